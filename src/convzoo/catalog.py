"""What the command line lists and checks before it imports torch (1-3 s of every start):
the choice lists and the model zoo's table, as plain data.

The simple lists are defined here and imported by the modules that use them; the names of
registries that hold code (recipes, strategies, data sets, export formats, models) are
mirrored here, and ``tests/test_catalog.py`` checks each mirror against its registry.
"""

from __future__ import annotations

from typing import NamedTuple

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OPTIMIZERS = ("sgd", "nesterov", "adamw")
#: onecycle: linear warm-up then linear decay; plateau: lower the lr when validation stalls
SCHEDULES = ("constant", "onecycle", "cosine", "plateau")
INITS = ("default", "xavier")
#: --in-memory of your own images: decide by free memory, always, never
IN_MEMORY = ("auto", "yes", "no")
#: the validation figures that pick the kept weights, and which way is better
MONITORS = {"val_acc": "max", "val_loss": "min"}
DEFAULT_DATASET = "fashion-mnist"
#: the names of image files of the user's own: a folder, a labels file
FILES_PREFIXES = ("folder:", "csv:")
SPLITS = ("train", "test")
PIPELINE_SCHEDULES = ("gpipe", "1f1b")
MODEL_MICROBATCHES = 1
PIPELINE_MICROBATCHES = 4
#: a run's weights: best.safetensors (chosen on validation data) or model.safetensors (last)
WEIGHTS = ("best", "last")
ATTRIBUTION_METHODS = ("hirescam", "gradcam")

# mirrors of registries that hold code
RECIPES = ("d2l", "fast", "speedrun", "best", "finetune")
STRATEGIES = ("single", "scratch", "dp", "ddp", "model", "pipeline")
DATASETS = ("fashion-mnist", "mnist", "cifar10", "folder:PATH", "csv:FILE", "ucr:NAME", "uea:NAME")
SERIES_ARCHIVES = ("ucr", "uea")
EXPORT_FORMATS = ("onnx", "pt2", "torchscript")
TORCHVISION_ARCHS = ("resnet18", "alexnet", "mobilenet_v3_small")
PROFILES = ("book", "cpu", "smoke")


class ZooRow(NamedTuple):
    """One line of ``convzoo models``; params and FLOPs counted on the meta device."""

    name: str
    family: str
    input_size: tuple[int, ...]
    params: int
    flops: int
    description: str


# fmt: off
MODELS = (
    ZooRow("alexnet", "alexnet", (1, 224, 224), 46764746, 1876292352, "AlexNet as in the book"),
    ZooRow("densenet", "densenet", (1, 96, 96), 758226, 258154336, "The book's DenseNet"),
    ZooRow("fcn1d", "fcn", (1, 150), 265994, 78952960, "FCN for time series (Wang, Yan and Oates 2017)"),  # noqa: E501
    ZooRow("googlenet", "googlenet", (1, 96, 96), 5977530, 552132608, "GoogLeNet as in the book"),
    ZooRow("lenet", "lenet", (1, 28, 28), 61706, 833040, "LeNet-5 as in the book"),
    ZooRow("lenet1d", "lenet", (1, 150), 59666, 195000, "LeNet-5 in one dimension"),
    ZooRow("lenet_bn", "lenet", (1, 28, 28), 44878, 563280, "LeNet with batch norm after every conv and hidden linear laye..."),  # noqa: E501
    ZooRow("nin", "nin", (1, 224, 224), 1992166, 1524594704, "NiN as in the book"),
    ZooRow("resnet18", "resnet", (1, 96, 96), 11178378, 637315072, "ResNet-18 as in the book"),
    ZooRow("resnet1d", "resnet", (1, 150), 505290, 150088960, "ResNet for time series (Wang, Yan and Oates 2017)"),  # noqa: E501
    ZooRow("resnet34", "resnet", (1, 96, 96), 21290250, 1316792320, "ResNet-34 with the book's residual block"),  # noqa: E501
    ZooRow("speednet", "speednet", (1, 28, 28), 241898, 17559040, "Small VGG-style network for fast training on 28-32 px images ..."),  # noqa: E501
    ZooRow("tv_alexnet", "torchvision", (1, 224, 224), 57029322, 1326564480, "torchvision's alexnet, to fine-tune its ImageNet weights"),  # noqa: E501
    ZooRow("tv_mobilenet_v3_small", "torchvision", (1, 224, 224), 1527818, 103767936, "torchvision's mobilenet_v3_small, to fine-tune its ImageNet w..."),  # noqa: E501
    ZooRow("tv_resnet18", "torchvision", (1, 224, 224), 11175370, 3469780992, "torchvision's resnet18, to fine-tune its ImageNet weights"),  # noqa: E501
    ZooRow("vgg11", "vgg", (1, 224, 224), 128806154, 15094464512, "VGG-11 as in the book"),
)
# fmt: on
