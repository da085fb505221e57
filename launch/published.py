"""Published sizes of the datasets the configs name: what `plan` counts when ``data.root``
is not there to count. ``name -> (train images, val/test images, classes)``."""

from __future__ import annotations

PUBLISHED: dict[str, tuple[int, int, int]] = {
    "imagenet": (1_281_167, 50_000, 1000),  # ILSVRC-2012 train / val
    "cifar10": (50_000, 10_000, 10),
    "cifar100": (50_000, 10_000, 100),
    "svhn": (73_257, 26_032, 10),  # train_32x32.mat / test_32x32.mat (the extra set is not read)
    "digits": (1_442, 355, 10),  # `cwn-bench make-dataset digits`: scikit-learn's 1797, a fifth to val
}
