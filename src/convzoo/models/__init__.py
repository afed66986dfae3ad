"""The chapter's networks, built by name: ``create_model("resnet18", num_classes=10)``.

Importing this package registers every family; models know nothing of data or training.
"""

from . import (  # noqa: F401
    alexnet,
    densenet,
    fcn,
    googlenet,
    lenet,
    nin,
    resnet,
    resnet1d,
    speednet,
    tv,
    vgg,
)
from ._base import ZooModel
from ._registry import ModelEntry, create_model, get_model_entry, list_models, register_model
from .batchnorm import BatchNorm

__all__ = [
    "BatchNorm",
    "ModelEntry",
    "ZooModel",
    "create_model",
    "get_model_entry",
    "list_models",
    "register_model",
]
