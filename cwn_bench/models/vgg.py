"""The paper's CIFAR VGG-A (Sec. 4.3): VGG's configuration A (8 conv3x3 + ReLU, 5 max-pools)
followed by fully connected layers of 512 units, batch normalisation in the first one."""

from __future__ import annotations

from torch import Tensor, nn

CONFIG_A = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGGA(nn.Module):
    """``[B, C, H, W]`` (H, W multiples of 32; 32 on CIFAR) -> ``features`` -> flatten
    (512 * H/32 * W/32) -> fc1 (512) -> BN -> ReLU -> fc2 (512) -> ReLU -> fc3 -> logits."""

    def __init__(self, num_classes: int, in_shape: tuple[int, ...] = (3, 32, 32), width: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_shape[0]
        for item in CONFIG_A:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU(inplace=True)]
                cin = item
        self.features = nn.Sequential(*layers)
        flat = cin * (in_shape[1] // 32) * (in_shape[2] // 32)
        self.classifier = nn.Sequential()
        self.classifier.add_module("fc1", nn.Linear(flat, width))
        self.classifier.add_module("bn1", nn.BatchNorm1d(width))
        self.classifier.add_module("relu1", nn.ReLU(inplace=True))
        self.classifier.add_module("fc2", nn.Linear(width, width))
        self.classifier.add_module("relu2", nn.ReLU(inplace=True))
        self.classifier.add_module("fc3", nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))
