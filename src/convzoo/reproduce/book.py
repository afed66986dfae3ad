"""The book's printed results: what ``convzoo reproduce`` compares its d2l cells with.

The settings that produced them (lr, batch size, resize; 10 epochs) are the d2l recipe's
:data:`~convzoo.train.recipes.BOOK_SETTINGS`; this file holds only what the book printed.
Source: the executed notebooks of d2l-en 0.17.5 and d2l-zh 2.0 (Fashion-MNIST, 10 epochs, one
V100, torch 1.12); ``spread`` is the range of test accuracy over published builds of the same
code (single runs without a fixed seed), so a reproduction is judged against the range, not
against one printed number.
"""

from __future__ import annotations

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
