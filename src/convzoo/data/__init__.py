"""Data: image sets in memory, loaders that batch them on the device, augmentation.

Data knows nothing of models or training.
"""

from .augment import folder_transforms, parse_augment
from .dataset import ImageDataset
from .loader import Augment, Batch, DeviceLoader, derive_seed

__all__ = [
    "Augment",
    "Batch",
    "DeviceLoader",
    "ImageDataset",
    "derive_seed",
    "folder_transforms",
    "parse_augment",
]
