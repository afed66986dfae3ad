"""The book's printed results: what ``convzoo reproduce`` compares its d2l cells with.

The settings that produced them (lr, batch size, resize; 10 epochs) are the d2l recipe's
:data:`~convzoo.train.recipes.BOOK_SETTINGS`; this file holds only what the book printed.
Source: the executed notebooks of d2l-en 0.17.5 and d2l-zh 2.0 (Fashion-MNIST, 10 epochs, one
V100, torch 1.12); ``spread`` is the range of test accuracy over published builds of the same
code (single runs without a fixed seed), so a reproduction is judged against the range, not
against one printed number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BookResult:
    en: float  #: test accuracy printed by the English edition
    zh: float  #: test accuracy printed by the Chinese edition
    low: float  #: lowest test accuracy over the published builds
    high: float  #: highest
    examples_per_sec: float  #: the English edition's figure (V100, the book's own metric)

    def verdict(self, acc: float) -> str:
        """``inside``, ``below`` or ``above`` the book's spread."""
        if acc < self.low:
            return "below"
        return "above" if acc > self.high else "inside"


#: one row per network of the chapter, as printed
BOOK_RESULTS: dict[str, BookResult] = {
    "lenet": BookResult(0.789, 0.779, 0.779, 0.801, 72_000),
    "lenet_bn": BookResult(0.838, 0.807, 0.807, 0.852, 35_000),
    "alexnet": BookResult(0.882, 0.883, 0.881, 0.883, 4_200),
    "vgg11": BookResult(0.922, 0.920, 0.912, 0.922, 2_600),
    "nin": BookResult(0.785, 0.790, 0.785, 0.867, 3_200),
    "googlenet": BookResult(0.883, 0.886, 0.854, 0.902, 3_600),
    "resnet18": BookResult(0.918, 0.893, 0.893, 0.918, 4_700),
    "densenet": BookResult(0.821, 0.885, 0.821, 0.901, 5_600),
}

#: the modern recipe must beat the book's best printed figure (the top of its spread) by this
#: much at the same input size, or the d2l cell by this much at the same reduced budget
MODERN_MARGIN = 0.02

#: the book's own code on a CPU, where a network's printed figure is one noisy run: the test
#: accuracy of the published d2l package's ``train_ch6`` (d2l 1.0.3, 10 epochs, the book's lr
#: and batch, seeds 0-9), measured by ``benchmarks/book_runs.py`` (benchmarks/RESULTS.md).
#: A d2l row is judged against these runs with a two-sample test, not against the printed range.
BOOK_CODE_RUNS: dict[str, tuple[float, ...]] = {
    "lenet": (0.7723, 0.7718, 0.7962, 0.7829, 0.8104, 0.7912, 0.8114, 0.7873, 0.7924, 0.7725),
}
#: the same as the book's code: Welch's test does not tell them apart at this level, and the
#: means are within this many points
SAME_P, SAME_POINTS = 0.05, 1.0


@dataclass(frozen=True)
class Comparison:
    """Our runs against the book's code's runs: Welch's two-sample t-test on test accuracy."""

    ours: tuple[float, ...]
    theirs: tuple[float, ...]
    p: float  #: two-sided p-value

    @property
    def points(self) -> float:
        """Our mean minus theirs, in points (x 100)."""
        return 100 * (statistics.fmean(self.ours) - statistics.fmean(self.theirs))

    @property
    def same(self) -> bool:
        return self.p >= SAME_P and abs(self.points) <= SAME_POINTS

    @property
    def verdict(self) -> str:
        """``differs from`` (the test tells them apart), ``the same as``, or ``not shown the
        same as`` (not told apart, but the means are more than a point apart)."""
        if self.p < SAME_P:
            return "differs from"
        return "the same as" if self.same else "not shown the same as"

    def describe(self) -> str:
        mean = lambda v: statistics.fmean(v)  # noqa: E731
        return (
            f"{self.verdict} the book's code: "
            f"{mean(self.ours):.4f} ({len(self.ours)} seeds) vs {mean(self.theirs):.4f} "
            f"({len(self.theirs)} runs of d2l's train_ch6), {self.points:+.1f} points, "
            f"Welch p = {self.p:.2f}"
        )


def compare_runs(ours: Sequence[float], theirs: Sequence[float]) -> Comparison | None:
    """Welch's t-test of two samples of test accuracy (``None`` with fewer than 2 in either)."""
    if len(ours) < 2 or len(theirs) < 2:
        return None
    (m1, m2), (v1, v2) = (
        map(statistics.fmean, (ours, theirs)),
        map(statistics.variance, (ours, theirs)),
    )
    se1, se2 = v1 / len(ours), v2 / len(theirs)
    if se1 + se2 == 0:
        return Comparison(tuple(ours), tuple(theirs), 1.0 if m1 == m2 else 0.0)
    t = abs(m1 - m2) / math.sqrt(se1 + se2)
    df = (se1 + se2) ** 2 / (se1**2 / (len(ours) - 1) + se2**2 / (len(theirs) - 1))
    return Comparison(tuple(ours), tuple(theirs), 1 - 2 * _t_mass(t, df))


def _t_mass(t: float, df: float, n: int = 2000) -> float:
    """Student's t density with ``df`` degrees of freedom integrated from 0 to ``t`` (Simpson,
    ``n`` intervals: 1e-9 of scipy's p-values here; no scipy needed for one p-value)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    f = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    h = t / n
    odd, even = (
        sum(f((2 * i - 1) * h) for i in range(1, n // 2 + 1)),
        sum(f(2 * i * h) for i in range(1, n // 2)),
    )
    return h / 3 * (f(0) + 4 * odd + 2 * even + f(t))
