"""Data: image sets and time series in memory, loaders that batch them on the device,
augmentation.

Data knows nothing of models or training.
"""

from .augment import apply, augment_grid, augmented_versions, parse_augment
from .augment1d import parse_augment1d
from .dataset import ImageDataset
from .folder import FolderIndex, index_folder, load_folder, place
from .folder_loader import FolderLoader
from .loader import Augment, Batch, BatchLoader, DeviceLoader, derive_seed
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
    "parse_augment",
    "parse_augment1d",
    "parse_subset",
    "place",
]
