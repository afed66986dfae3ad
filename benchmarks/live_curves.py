"""What the live curves and the progress display cost an epoch in a Jupyter kernel.

Runs the main job's training (speednet, fast recipe, Fashion-MNIST) in a real kernel (nbclient +
ipykernel, the kernel this Python provides) and, for each epoch, pairs the epoch's time
(training and evaluation) with the time the redraw of the curves took (matplotlib, the PNG and
the display message) and the time the progress display's redraws took.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/live_curves.py --epochs 3

The 2% goal: the curves and the bar together take at most 2% of an epoch.
"""

from __future__ import annotations

import argparse
import json
import os

CELL = """
import json, time
import convzoo
from convzoo.display import LiveOutput
from convzoo.train.callbacks import Callback, LiveCurves

bar = []  # seconds of each progress redraw
show = LiveOutput.show


def timed(self, text, **kw):
    t = time.perf_counter()
    show(self, text, **kw)
    if kw.get("png") is None:
        bar.append(time.perf_counter() - t)


LiveOutput.show = timed


class PerEpoch(Callback):  # the bar's seconds up to each epoch's end
    marks = []

    def on_epoch_end(self, trainer, record):
        self.marks.append(sum(bar))


live = LiveCurves()
history = convzoo.fit("speednet", "fashion-mnist", epochs=EPOCHS, callbacks=[PerEpoch(), live])
assert len(live.draw_s) == len(history), "an epoch was not redrawn"
bars = [b - a for a, b in zip([0.0, *PerEpoch.marks], PerEpoch.marks)]
rows = [
    dict(epoch=r["epoch"], epoch_s=r["epoch_time_s"] + r["eval_time_s"], draw_s=d, bar_s=b)
    for r, d, b in zip(history.records, live.draw_s, bars)
]
print("RESULT", json.dumps(dict(rows=rows, bar_updates=len(bar))))
"""


def main(argv: list[str] | None = None) -> dict:
    import nbformat
    from nbclient import NotebookClient

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)
    print(f"load average at the start: {os.getloadavg()}")
    cell = nbformat.v4.new_code_cell(CELL.replace("EPOCHS", str(args.epochs)))
    nb = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(nb, kernel_name="python3", timeout=3600).execute()
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    result = json.loads(text.split("RESULT ", 1)[1])
    for r in result["rows"]:
        share = (r["draw_s"] + r["bar_s"]) / r["epoch_s"]
        print(
            f"epoch {r['epoch']}: {r['epoch_s']:.1f} s; curves redrawn in {r['draw_s']:.3f} s, "
            f"progress redraws {r['bar_s']:.3f} s: {100 * share:.2f}% of the epoch"
        )
    print(f"{result['bar_updates']} progress redraws in all")
    print(f"load average at the end: {os.getloadavg()}")
    return result


if __name__ == "__main__":
    main()
