"""Class and few-shot subsets (``--subset classes=5-9,shots=20,seed=1``)."""

import pytest
import torch

from convzoo.data import apply_subset
from convzoo.data.subsets import SubsetError
from helpers import toy_dataset


def data(split="train", n=400):
    d = toy_dataset(n, num_classes=8, split=split)
    d.classes = ["zero", "one", "T-shirt/top", "three", "four", "five", "six", "seven"]
    return d


def test_classes_are_renumbered_in_the_order_given():
    d = data()
    sub = apply_subset(d, "classes=5-7")
    assert sub.classes == ["five", "six", "seven"] and len(sub) == 150
    assert torch.equal(sub.labels, d.labels[d.labels >= 5] - 5)
    picked = apply_subset(d, "classes=T-shirt/top+0")  # names (with a dash) and ids
    assert picked.classes == ["T-shirt/top", "zero"]
    assert torch.equal(picked.images[picked.labels == 0], d.images[d.labels == 2])


def test_shots_cut_the_training_split_only_and_nest():
    train, test = data(), data("test", 200)
    few = apply_subset(train, "classes=5-7,shots=7")
    assert few.class_counts() == [7, 7, 7]
    assert len(apply_subset(test, "classes=5-7,shots=7")) == 75  # all test images of 5-7
    ten = apply_subset(train, "classes=0-3,shots=10,seed=1")
    twenty = apply_subset(train, "classes=0-3,shots=20,seed=1")
    other = apply_subset(train, "classes=0-3,shots=10,seed=2")
    as_set = lambda d: {tuple(x.flatten().tolist()) for x in d.images}  # noqa: E731
    assert as_set(ten) < as_set(twenty) and as_set(ten) != as_set(other)
    assert len(apply_subset(train, "shots=60")) == 8 * 50  # classes with fewer keep all


@pytest.mark.parametrize(
    "spec, match",
    [
        ("classes=9-5", "empty"),
        ("classes=5-12", "outside 0-7"),
        ("classes=1+1", "twice"),
        ("classes=sandal", "unknown class 'sandal'"),
        ("class=1", "bad subset item"),
        ("shots=0", "shots must be >= 1"),
        ("shots=ten", "whole number"),
        ("shots=5,shots=6", "gives shots twice"),
        (",", "empty subset spec"),
    ],
)
def test_bad_specs_are_one_clear_error(spec, match):
    with pytest.raises(SubsetError, match=match):
        apply_subset(data(), spec)
