#!/usr/bin/env bash
# The book's table on one GPU: `convzoo reproduce --profile book` (target: all 16 cells, the
# book's settings and the modern recipe for 8 networks, within 8 minutes), then the book's own
# code (benchmarks/reference_d2l.py) and our d2l cell for one network (resnet18: the book's
# 0.05 / 256 / 96 px, 10 epochs), each alone on the machine, for the time ratio. For a session
# that holds a GPU machine (torch/torchvision preinstalled, no internet).
#
# Before calling, carry Fashion-MNIST in an ignored folder of the checkout:
#   mkdir -p .data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/
# then run, e.g. with the device tool: carry [".data"], command "bash benchmarks/gpu_reproduce.sh".
# A dry run on a CPU with tiny settings checks the plumbing: DRY=1 bash benchmarks/gpu_reproduce.sh
#
# Steps (each under its own time limit; a failed step is reported and the next one runs):
#   1. the table: convzoo reproduce --profile book, 3 cells at once (small cells leave the GPU
#      idle most of the time: a resnet18@96 step is launch-bound, RESULTS.md)
#   2. the book's code, resnet18, 10 epochs, its 4 DataLoader workers
#   3. convzoo train --recipe d2l --model resnet18 alone (in step 1 it shared the GPU)
# Everything printed also goes to $OUT/gpu_reproduce.log; the table and its report to $OUT/book.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}  # the GPU machine's interpreter with torch is python3
export PYTHON=$PY PYTHONPATH=src PYTHONUNBUFFERED=1
export CONVZOO_SYSTEM_DATA=${CONVZOO_SYSTEM_DATA-"$PWD/.data"}
export CONVZOO_DATA=${CONVZOO_DATA:-/tmp/convzoo-data} CONVZOO_OFFLINE=1
OUT=${OUT:-/tmp/convzoo-gpu}
if [ "${DRY:-0}" = 1 ]; then  # the plumbing on a CPU, a few minutes: tiny and not comparable
  PROFILE=smoke DEVICE=cpu JOBS=2 TABLE_S=300
  REF=(--epochs 1 --max-batches 3 --resize 32 --no-eval)
  OURS=(--epochs 1 --subset shots=5 --image-size 32)
else
  PROFILE=book DEVICE=cuda JOBS=${JOBS:-3} REF=(--epochs 10) OURS=() TABLE_S=${TABLE_S:-480}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}  # per cell process, 3 at once on 16 cores
fi
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_reproduce.log") 2>&1
source benchmarks/gpu_step.sh  # step LIMIT_S NAME CMD..., $failed

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no GPU"
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available())"
nproc; cat /proc/loadavg

# 1. the table (the first cell also decompresses the data set into $CONVZOO_DATA)
step "$TABLE_S" "convzoo reproduce --profile $PROFILE, $JOBS cells at once" \
  "$PY" -m convzoo reproduce --profile "$PROFILE" --device "$DEVICE" --jobs "$JOBS" \
  --out "$OUT/table"

# 2. and 3. one network the book's way and ours, each alone
REF_S=${REF_S:-200}  # 0 skips steps 2 and 3
step "$REF_S" "the book's code: resnet18, ${REF[*]}" "$PY" benchmarks/reference_d2l.py \
  --model resnet18 --device "$DEVICE" --warmup 0 "${REF[@]}" --json "$OUT/reference_resnet18.json"
rm -rf "$OUT/resnet18-d2l-alone"
step "$REF_S" "convzoo d2l resnet18 alone" "$PY" -m convzoo train --recipe d2l --model resnet18 \
  --device "$DEVICE" "${OURS[@]}" --out "$OUT/resnet18-d2l-alone"

"$PY" - "$OUT" <<'PY'
# the whole table's wall time, and the training-time ratio of step 2 to step 3 (both: the
# training loop's wall clock with data loading, evaluation excluded)
import csv, json, sys
out = sys.argv[1]
try:
    state = json.load(open(f"{out}/table/reproduce.json"))
    walls = [c.get("wall_s", 0) for c in state["cells"].values()]
    inv = state["invocations"][-1]
    print(f"table: {sum(c.get('status') == 'done' for c in state['cells'].values())} of "
          f"{len(walls)} cells done, {inv.get('started')} -> {inv.get('ended')}, "
          f"cells' wall summed {sum(walls):.0f} s")
    ref = json.load(open(f"{out}/reference_resnet18.json"))
    rows = list(csv.DictReader(open(f"{out}/resnet18-d2l-alone/history.csv")))
    ours = sum(float(r["epoch_time_s"]) for r in rows)
    acc = json.load(open(f"{out}/resnet18-d2l-alone/metrics.json"))["test_acc"]
    print(f"resnet18 d2l, {len(rows)} epoch(s): the book's code {ref['seconds']:.1f} s of "
          f"training (test acc {ref['test_acc']}), convzoo {ours:.1f} s (test acc {acc:.4f}): "
          f"{ref['seconds'] / ours:.2f}x")
except (OSError, KeyError, ValueError) as e:
    print(f"summary incomplete: {e}")
PY

echo
echo "== gpu_reproduce.sh: $failed step(s) failed, $SECONDS s in all"
exit "$failed"
