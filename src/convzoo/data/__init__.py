"""Data: image sets in memory, loaders that batch them on the device, augmentation.

Data knows nothing of models or training.
"""

from .augment import folder_transforms, parse_augment
from .dataset import ImageDataset
from .folder import FolderIndex, FolderLoader, index_folder, load_folder
from .loader import Augment, Batch, DeviceLoader, derive_seed
from .sources import dataset_names, default_root, fetch_dataset, load_dataset
from .subsets import apply_subset, parse_subset

__all__ = [
    "Augment",
    "Batch",
    "DeviceLoader",
    "FolderIndex",
    "FolderLoader",
    "ImageDataset",
    "apply_subset",
    "dataset_names",
    "default_root",
    "derive_seed",
    "fetch_dataset",
    "folder_transforms",
    "index_folder",
    "load_dataset",
    "load_folder",
    "parse_augment",
    "parse_subset",
]
