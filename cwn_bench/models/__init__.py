"""Models of the paper, built by name: ``build("googlenet_bn", 1000, method="cwn")``.

``NAMES`` lists them; :func:`from_config` builds from a ``ModelConfig``. Every model takes
``[B, *in_shape]`` float input and returns logits ``[B, num_classes]`` (torchvision's
``googlenet`` with ``aux_logits=True`` returns its ``GoogLeNetOutputs`` in train mode).
"""

from cwn_bench.models.factory import NAMES, build, from_config

__all__ = ["NAMES", "build", "from_config"]
