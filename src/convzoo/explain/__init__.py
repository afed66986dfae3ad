"""See inside a trained network: ``convzoo explain`` and its Python API.

The chapter prints each layer's output shape and points learners at the CNN Explainer; this
shows, for one image, what a trained network computes: the input as it receives it, each
stage's output shape and most active feature maps, the first convolution's filters, the class
probabilities, and where in the image the evidence for the predicted and the true class lies.

>>> model = convzoo.load_model("runs/speednet")                          # doctest: +SKIP
>>> e = explain(model, model.meta, read_image("boot.png", model.meta.in_channels))  # doctest: +SKIP
>>> write_explanation(e, "explain-boot")                                  # doctest: +SKIP

``cam`` computes the attribution maps, ``explanation`` the tensors, ``pictures`` the PNGs and
``page`` the HTML; models know nothing of any of it.
"""

from .cam import METHODS, class_activation_maps, resolve_layer, stage_modules
from .explanation import Explanation, StageView, explain, network_input
from .page import write_explanation

__all__ = [
    "METHODS",
    "Explanation",
    "StageView",
    "class_activation_maps",
    "explain",
    "network_input",
    "resolve_layer",
    "stage_modules",
    "write_explanation",
]
