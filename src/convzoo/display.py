"""What a Jupyter notebook shows of convzoo's objects: HTML tables, inline PNGs, and outputs
redrawn in place while a cell runs.

IPython is never imported outside a kernel: :func:`in_jupyter` reads it from ``sys.modules``
(a kernel has imported it; tqdm.autonotebook's test), and :class:`LiveOutput` imports it only
when it is first shown, which only happens in a kernel.
"""

from __future__ import annotations

import base64
import html
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def in_jupyter() -> bool:
    """Whether this process is a Jupyter kernel: IPython's shell is configured by an
    IPKernelApp (an IPython terminal, or a script that imported IPython, is not)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def html_table(
    head: Sequence[str], rows: Iterable[Sequence[Any]], *, align: str = "", caption: str = ""
) -> str:
    """A plain HTML table; ``align`` gives each column's alignment (``l`` or ``r``, default
    ``l``). Cells are escaped; a cell that is a :class:`Raw` string is inserted as it is."""

    def cell(tag: str, k: int, value: Any) -> str:
        side = "right" if align[k : k + 1] == "r" else "left"
        text = value if isinstance(value, Raw) else html.escape(str(value))
        return f'<{tag} style="text-align:{side}">{text}</{tag}>'

    top = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    header = "".join(cell("th", k, h) for k, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(cell("td", k, v) for k, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table>{top}<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


class Raw(str):
    """HTML that :func:`html_table` inserts without escaping."""


def png_img(png: bytes, alt: str = "") -> str:
    """An ``<img>`` carrying the PNG itself (a data URL): the notebook needs no file."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


class LiveOutput:
    """One output of the running cell, shown once and then replaced in place (a Jupyter
    ``display_id``), as the book's ``Animator`` redraws its figure: the stored notebook keeps
    the last version only, with or without ipywidgets."""

    def __init__(self) -> None:
        self._handle: Any = None

    def show(self, text: str, *, html_text: str | None = None, png: bytes | None = None) -> None:
        """Show (the first time) or replace the output: ``text`` for plain-text readers, and
        HTML or a PNG for the notebook."""
        from IPython.display import display

        bundle = {"text/plain": text}
        if html_text is not None:
            bundle["text/html"] = html_text
        if png is not None:
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
