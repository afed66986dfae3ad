"""Data: image sets in memory, loaders that batch them on the device, augmentation.

Data knows nothing of models or training.
"""

from .dataset import ImageDataset
from .loader import Augment, Batch, DeviceLoader, derive_seed
from .subsets import apply_subset, parse_subset

__all__ = [
    "Augment",
    "Batch",
    "DeviceLoader",
    "ImageDataset",
    "apply_subset",
    "derive_seed",
    "parse_subset",
]
