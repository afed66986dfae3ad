"""Seeded mutations of the files convzoo reads: bytes (truncate, flip, zero, insert, grow) and
lies in each format's own header. Each takes a ``random.Random`` and returns ``(what, new)``.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import struct
import zlib
from typing import Any

# -- bytes ------------------------------------------------------------------------------------


def byte_mutation(data: bytes, r: random.Random) -> tuple[str, bytes]:
    """One of: truncate (to 0, inside the header, anywhere), flip bytes, zero a span, insert
    or append garbage, grow by repeating a chunk."""
    n = len(data)
    kind = r.choice(["truncate", "truncate-head", "flip", "zero", "insert", "append", "grow"])
    if kind == "truncate":
        cut = r.randrange(0, max(n, 1))
        return f"truncate to {cut} of {n} bytes", data[:cut]
    if kind == "truncate-head":
        cut = r.randrange(0, min(n, 64) or 1)
        return f"truncate to {cut} bytes (inside the header)", data[:cut]
    if kind == "flip":
        out = bytearray(data)
        k = r.randint(1, 16)
        for _ in range(k):
            if out:
                out[r.randrange(len(out))] ^= 1 << r.randrange(8)
        return f"flip {k} bits", bytes(out)
    if kind == "zero":
        a = r.randrange(0, max(n, 1))
        b = min(n, a + r.randint(1, 4096))
        return f"zero bytes {a}..{b}", data[:a] + bytes(b - a) + data[b:]
    if kind == "insert":
        a = r.randrange(0, max(n, 1))
        junk = r.randbytes(r.randint(1, 512))
        return f"insert {len(junk)} random bytes at {a}", data[:a] + junk + data[a:]
    if kind == "append":
        junk = r.randbytes(r.randint(1, 1 << 16))
        return f"append {len(junk)} random bytes", data + junk
    a = r.randrange(0, max(n, 1))
    chunk = data[a : a + r.randint(1, 4096)]
    times = r.randint(2, 50)
    return f"repeat {len(chunk)} bytes at {a} x{times}", data[:a] + chunk * times + data[a:]


# -- IDX --------------------------------------------------------------------------------------
def idx_lie(data: bytes, ndim: int, r: random.Random) -> tuple[str, bytes]:
    """A header that lies: another magic, a dimension larger, smaller, zero or huge."""
    kind = r.choice(["magic", "dim", "dim", "labels"] if ndim == 1 else ["magic", "dim", "dim"])
    if kind == "magic":
        magic = r.choice([0, 0x00000801 if ndim == 3 else 0x00000803, 0x00000D03, 0xFFFFFFFF])
        return f"magic {magic:#x}", magic.to_bytes(4, "big") + data[4:]
    if kind == "labels":  # a label outside 0..9
        out = bytearray(data)
        at = 8 + r.randrange(len(out) - 8)
        out[at] = r.choice([10, 200, 255])
        return f"label {out[at]} at byte {at}", bytes(out)
    k = r.randrange(ndim)
    dims = list(struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim]))
    dims[k] = r.choice([0, 1, dims[k] + 1, dims[k] * 1000, 2**31, 2**32 - 1])
    head = data[:4] + struct.pack(f">{ndim}I", *dims)
    return f"dimension {k} = {dims[k]}", head + data[4 + 4 * ndim :]


def gz_mutation(raw: bytes, r: random.Random) -> tuple[str, bytes]:
    """A ``.gz`` that is damaged, lies, or expands far beyond its header's size."""
    kind = r.choice(["bytes", "bytes", "inner", "bomb", "garbage", "trailing", "members"])
    if kind == "bytes":
        what, data = byte_mutation(gzip.compress(raw, mtime=0), r)
        return f"gz: {what}", data
    if kind == "inner":
        what, inner = idx_lie(raw, 3 if len(raw) > 1000 else 1, r)
        return f"gz of an IDX whose {what}", gzip.compress(inner, mtime=0)
    if kind == "bomb":  # the header's size, then 200 MB of zeros (200 kB of gzip)
        bomb = raw + bytes(200 << 20)
        return "gz bomb: 200 MB more than the header says", gzip.compress(bomb, 1, mtime=0)
    if kind == "garbage":
        return "gz of random bytes", gzip.compress(r.randbytes(4096), mtime=0)
    if kind == "trailing":
        return "gz with trailing garbage", gzip.compress(raw, mtime=0) + r.randbytes(100)
    cut = r.randrange(1, len(raw))
    two = gzip.compress(raw[:cut], mtime=0) + gzip.compress(raw[cut:], mtime=0)
    return "gz in two members", two


# -- images -----------------------------------------------------------------------------------
def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[at : at + 4]), data[at + 4 : at + 8]
        chunks.append((kind, data[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def png_build(chunks: list[tuple[bytes, bytes]], good_crc: bool = True) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) if good_crc else 0
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    return out


def png_lie(data: bytes, r: random.Random) -> tuple[str, bytes]:
    """IHDR that lies (size huge, zero, just over PIL's limit; colour type, bit depth),
    a bad CRC, IDAT truncated or expanding far, a giant text chunk."""
    chunks = png_chunks(data)
    ihdr = bytearray(chunks[0][1])
    kind = r.choice(["size", "size", "colour", "depth", "crc", "idat", "idat-bomb", "text"])
    if kind == "size":
        w, h = r.choice([(0, 16), (16, 0), (65535, 65535), (2**31 - 1, 1), (9500, 9500)])
        ihdr[0:8] = struct.pack(">II", w, h)
        return f"IHDR says {w}x{h}", png_build([(b"IHDR", bytes(ihdr)), *chunks[1:]])
    if kind == "colour":
        ihdr[9] = r.choice([1, 5, 7, 255])
        return f"IHDR colour type {ihdr[9]}", png_build([(b"IHDR", bytes(ihdr)), *chunks[1:]])
    if kind == "depth":
        ihdr[8] = r.choice([0, 3, 7, 32])
        return f"IHDR bit depth {ihdr[8]}", png_build([(b"IHDR", bytes(ihdr)), *chunks[1:]])
    if kind == "crc":
        return "every chunk's CRC wrong", png_build(chunks, good_crc=False)
    idat = next(i for i, (k, _) in enumerate(chunks) if k == b"IDAT")
    if kind == "idat":
        body = chunks[idat][1][: r.randrange(len(chunks[idat][1]))]
        chunks[idat] = (b"IDAT", body)
        return f"IDAT cut to {len(body)} bytes", png_build(chunks)
    if kind == "idat-bomb":  # the pixels of a 9500x9500 image in a 16x16 file's IDAT
        chunks[idat] = (b"IDAT", zlib.compress(bytes(9500 * 9501), 9))
        return "IDAT expanding to 90 MB", png_build(chunks)
    big = b"Comment\x00" + b"x" * (8 << 20)
    return "an 8 MB text chunk", png_build([chunks[0], (b"tEXt", big), *chunks[1:]])


def jpeg_lie(data: bytes, r: random.Random) -> tuple[str, bytes]:
    """SOF dimensions that lie, or a damaged Huffman table / scan."""
    sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    kind = r.choice(["size", "size", "dht", "scan"])
    if kind == "size":
        h, w = r.choice([(0, 16), (65535, 65535), (16, 0), (9500, 9500)])
        out = data[: sof + 5] + struct.pack(">HH", h, w) + data[sof + 9 :]
        return f"SOF says {w}x{h}", out
    if kind == "dht":
        at = data.find(b"\xff\xc4")
        out = bytearray(data)
        for k in range(at + 5, min(at + 40, len(out))):
            out[k] = r.randrange(256)
        return "Huffman table scrambled", bytes(out)
    at = data.find(b"\xff\xda")
    return "scan cut short", data[: at + r.randint(10, 60)]


# -- safetensors ------------------------------------------------------------------------------
def st_split(data: bytes) -> tuple[dict[str, Any], bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def st_join(header: Any, payload: bytes, length: int | None = None) -> bytes:
    h = json.dumps(header).encode()
    return (len(h) if length is None else length).to_bytes(8, "little") + h + payload


#: values a hand-edited ``convzoo`` metadata field may take
META_LIES: dict[str, list[Any]] = {
    "model": ["nonet", 123, None, "", "resnet18"],
    "model_options": [{"width": -1}, {"width": 10**9}, [], "x", {"depth": 3}, {"width": 0.5}],
    "num_classes": [0, -1, 10**9, "10", None, 3, 2.5, True],
    "in_channels": [0, 3, 10**6, "1", None],
    "classes": [[], ["a"], "abc", [1, 2, 3, 4], None, ["x"] * 1000],
    "image_size": [0, -5, 100000, 1.5, "28", None, 1, 2**40],
    "mean": [[0.5, 0.5, 0.5], ["a"], [float("nan")], 0.5, [1e308]],
    "std": [[0.0], [-1.0], [0.1, 0.1], None, "x"],
    "dataset": ["nope", "folder:/nonexistent", 7, None],
    "subset": ["classes=99", "garbage", 5],
    "precision": ["fp8", 123, None],
    "tta": ["yes", None, 2],
}


def st_lie(data: bytes, r: random.Random) -> tuple[str, bytes]:
    """safetensors that lie: the header's length (a terabyte, 0, past the end, short), a
    tensor's dtype, shape or offsets, tensors missing, extra or renamed, the header JSON not an
    object or broken, the convzoo metadata (each field, or not JSON)."""
    header, payload = st_split(data)
    names = [k for k in header if k != "__metadata__"]
    name = r.choice(names)
    kind = r.choice(
        ["length", "dtype", "shape", "offsets", "drop", "extra", "rename", "json", "meta",
         "meta", "meta", "meta-raw"]
    )  # fmt: skip
    if kind == "length":
        n = r.choice([0, 1, 2**40, 2**63, len(data), 7])
        return f"header length says {n}", st_join(header, payload, n)
    entry = header[name]
    if kind == "dtype":
        entry["dtype"] = r.choice(["F64", "BOGUS", "I8", "BOOL", "F8_E4M3", 3])
        return f"{name} dtype {entry['dtype']}", st_join(header, payload)
    if kind == "shape":
        entry["shape"] = r.choice([[], [0], [2**40], [-1], [1, 2, 3, 4, 5], "x", [2**20, 2**20]])
        return f"{name} shape {entry['shape']}", st_join(header, payload)
    if kind == "offsets":
        a, b = entry["data_offsets"]
        entry["data_offsets"] = r.choice([[b, a], [a, b + 4], [0, 2**62], [a, len(payload) + 8]])
        return f"{name} offsets {entry['data_offsets']}", st_join(header, payload)
    if kind == "drop":
        del header[name]
        return f"{name} removed", st_join(header, payload)
    if kind == "extra":
        header["extra.weight"] = dict(entry)
        return "an extra tensor", st_join(header, payload)
    if kind == "rename":
        header[name + "_x"] = header.pop(name)
        return f"{name} renamed", st_join(header, payload)
    if kind == "json":
        h = json.dumps(header).encode()
        what, h2 = r.choice(
            [("a list", b"[1, 2]"), ("cut", h[: len(h) // 2]), ("junk", b"\xff" * 10)]
        )
        return f"header JSON {what}", len(h2).to_bytes(8, "little") + h2 + payload
    meta = header.setdefault("__metadata__", {})
    if kind == "meta-raw":
        meta["convzoo"] = r.choice(["{not json", "[1]", '"str"', "null", "{" * 10000])
        return f"metadata {meta['convzoo'][:20]!r}", st_join(header, payload)
    fields = json.loads(meta["convzoo"])
    key = r.choice(list(META_LIES))
    fields[key] = r.choice(META_LIES[key])
    meta["convzoo"] = json.dumps(fields)
    return f"metadata {key}={str(fields[key])[:40]}", st_join(header, payload)


# -- a checkpoint's content -------------------------------------------------------------------
TRAINER_LIES: dict[str, list[Any]] = {
    "epoch": ["x", -1, 10**9, None, 1.5],
    "step": [-1, 10**9, "0", None],
    "global_step": [None, "x", -5],
    "sums": ["x", None, [1, 2]],
    "history": ["x", [1, 2], None, [{"epoch": "a"}]],
    "rng": [{}, None, {"torch": "x", "python": [1]}],
    "optimizer": [{}, None, {"state": {}, "param_groups": []}],
    "scheduler": [{}, "x"],
    "scaler": [None, "x"],
    "world_size": [0, 3, "2"],
    "model": [{}, None, "x"],
}


def checkpoint_lie(state: dict, r: random.Random) -> tuple[str, dict]:
    """A checkpoint dict that lies: a trainer field of the wrong type or value, a model tensor
    of another shape, its format or config changed, parts missing."""
    import torch

    kind = r.choice(["trainer", "trainer", "tensor", "format", "config", "drop"])
    trainer = state["trainer"]
    if kind == "trainer":
        key = r.choice(list(TRAINER_LIES))
        trainer[key] = r.choice(TRAINER_LIES[key])
        return f"trainer {key}={str(trainer[key])[:30]}", state
    if kind == "tensor":
        name = r.choice(list(trainer["model"]))
        trainer["model"][name] = torch.zeros(r.choice([(1,), (3, 3), (1000,)]))
        return f"model tensor {name} reshaped", state
    if kind == "format":
        state["format"] = r.choice(["other", None, 1])
        return f"format {state['format']}", state
    if kind == "config":
        key = r.choice(["model", "epochs", "lr", "batch_size", "dataset", "model_options"])
        state["config"][key] = r.choice(["x", -1, None, 0, {"a": 1}])
        return f"config {key}={state['config'][key]}", state
    key = r.choice(["trainer", "config", "meta"])
    del state[key]
    return f"{key} removed", state


CONFIG_LIES: dict[str, list[Any]] = {
    "model": ["nonet", 5, None],
    "model_options": ["x", [1], {"width": -3}, {"nope": 1}],
    "dataset": ["imagenet", 3, "folder:/nonexistent", None],
    "epochs": [0, -1, "10", None, 2.5, True],
    "batch_size": [0, "x", -16, None],
    "lr": [0, -1, "fast", None, float("inf")],
    "optimizer": ["adagrad", 1],
    "schedule": ["sometimes", None],
    "image_size": [0, 100000, "28", -1],
    "seed": ["x", None, 1.5],
    "val_split": [-0.1, 2.5, "x"],
    "augment": ["spin:360", 5, None],
    "subset": ["classes=99", 5],
    "strategy": ["magic", None],
    "device": ["cuda:9", 5],
    "eval_batch_size": [0, "x"],
    "ckpt_every": [0, "2"],
    "precision": ["fp8"],
}


def config_lie(config: Any, r: random.Random) -> tuple[str, Any]:
    kind = r.choice(["field", "field", "field", "type", "drop"])
    if kind == "type":
        return "not an object", r.choice([[1, 2], "config", 3, None])
    if kind == "drop":
        key = r.choice(list(config))
        del config[key]
        return f"{key} removed", config
    key = r.choice(list(CONFIG_LIES))
    config[key] = r.choice(CONFIG_LIES[key])
    return f"{key}={config[key]!r}", config


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2).encode()


# -- .ts text ---------------------------------------------------------------------------------
def ts_lie(text: str, r: random.Random) -> tuple[str, str]:
    """A ``.ts`` file whose header or series lie."""
    lines = text.splitlines()
    data_at = next(i for i, line in enumerate(lines) if line.lower().startswith("@data"))
    series = list(range(data_at + 1, len(lines)))
    kind = r.choice(
        ["drop-header", "labels", "dims", "value", "label", "channels", "long", "empty",
         "binary", "latin1", "no-series", "timestamps", "target"]
    )  # fmt: skip
    if kind == "drop-header":
        tag = r.choice(["@classlabel", "@data", "@problemname", "@univariate"])
        lines = [line for line in lines if not line.lower().startswith(tag)]
        return f"no {tag} line", "\n".join(lines)
    if kind == "labels":
        i = next(i for i, line in enumerate(lines) if line.lower().startswith("@classlabel"))
        lines[i] = r.choice(["@classLabel true 1 1", "@classLabel false", "@classLabel true"])
        return f"header {lines[i]}", "\n".join(lines)
    if kind == "dims":
        lines.insert(data_at, r.choice(["@dimensions 3", "@dimensions 0", "@dimensions x"]))
        return f"header {lines[data_at]}", "\n".join(lines)
    k = r.choice(series)
    if kind == "value":
        values, _, label = lines[k].rpartition(":")
        bad = r.choice(["abc", "inf", "-inf", "1e999", "", "0x1F", "nan,nan"])
        lines[k] = values.replace(",", f",{bad},", 1) + ":" + label
        return f"line {k + 1}: value {bad!r}", "\n".join(lines)
    if kind == "label":
        lines[k] = lines[k].rpartition(":")[0] + ":" + r.choice(["99", "", "x y"])
        return f"line {k + 1}: an undeclared label", "\n".join(lines)
    if kind == "channels":
        lines[k] = lines[k].replace(":", ":1,2,3:", 1)
        return f"line {k + 1}: a second channel", "\n".join(lines)
    if kind == "long":
        values, _, label = lines[k].rpartition(":")
        lines[k] = ",".join(["0.5"] * 200000) + ":" + label
        return f"line {k + 1}: 200,000 values", "\n".join(lines)
    if kind == "empty":
        lines[k] = ":" + lines[k].rpartition(":")[2]
        return f"line {k + 1}: no values", "\n".join(lines)
    if kind == "binary":
        return "binary junk", "\n".join(lines[:k]) + "\x00\x01\x02\ufffd\n" + "\n".join(lines[k:])
    if kind == "latin1":
        return "not UTF-8", "\udcff"  # written with surrogateescape: a lone 0xFF byte
    if kind == "no-series":
        return "header only", "\n".join(lines[: data_at + 1])
    if kind == "timestamps":
        lines.insert(data_at, "@timeStamps true")
        return "@timeStamps true", "\n".join(lines)
    lines.insert(data_at, "@targetLabel true")
    return "@targetLabel true", "\n".join(lines)


def jpeg_bytes(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()
