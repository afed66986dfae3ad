"""Data: image sets and time series in memory, loaders that batch them on the device,
augmentation.

Data knows nothing of models or training.
"""

from typing import Any

from .augment import apply, augment_grid, augmented_versions, parse_augment
from .augment1d import parse_augment1d
from .dataset import ImageDataset, LabelledData
from .folder import FolderIndex, index_folder, load_folder, place
from .folder_loader import FolderLoader
from .loader import Augment, Batch, BatchLoader, DeviceLoader, SequenceLoader, derive_seed
from .sequences import SequenceDataset, load_sequences
from .sources import dataset_names, default_root, fetch_dataset, load_dataset
from .subsets import apply_subset, parse_subset

__all__ = [
    "Augment",
    "Batch",
    "BatchLoader",
    "DeviceLoader",
    "FolderIndex",
    "FolderLoader",
    "ImageDataset",
    "SequenceDataset",
    "apply",
    "apply_subset",
    "augment_grid",
    "augmented_versions",
    "dataset_names",
    "default_root",
    "derive_seed",
    "fetch_dataset",
    "index_folder",
    "load_dataset",
    "load_folder",
    "load_sequences",
    "make_loader",
    "parse_augment",
    "parse_augment1d",
    "parse_subset",
    "place",
]


def make_loader(data: LabelledData, batch_size: int, **kwargs: Any) -> BatchLoader:
    """The loader for ``data``'s kind (the one place that chooses): a :class:`SequenceLoader`
    for time series, a :class:`DeviceLoader` for images in memory, a
    :class:`~convzoo.data.folder_loader.FolderLoader` for image files to stream."""
    if isinstance(data, FolderIndex):
        return FolderLoader(data, batch_size, **kwargs)
    cls = SequenceLoader if isinstance(data, SequenceDataset) else DeviceLoader
    return cls(data, batch_size, **kwargs)
