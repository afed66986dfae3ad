"""One small member of every zoo family, for the model and pipeline parallel smoke tests."""

from ddp_job import SMALL_VGG

#: family -> (model, options, image size): the smallest inputs and widths each family takes
FAMILIES = {
    "speednet": ("speednet", {"width": 8}, 16),
    "lenet": ("lenet_bn", {}, 16),  # the from-scratch BatchNorm
    "alexnet": ("alexnet", {}, 65),
    "vgg": ("vgg11", SMALL_VGG, 16),
    "nin": ("nin", {}, 67),
    "googlenet": ("googlenet", {}, 16),
    "resnet": ("resnet18", {"width": 8, "stem": "small"}, 16),
    "densenet": ("densenet", {"growth_rate": 4, "num_convs_in_dense_blocks": [1, 1]}, 32),
    "torchvision": ("tv_mobilenet_v3_small", {}, 32),
}
#: over ~10 s each on the 2 shared cores (tens of millions of parameters, or 65+ px inputs)
SLOW = {"alexnet", "nin", "torchvision", "googlenet"}
