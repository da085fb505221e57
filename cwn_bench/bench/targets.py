"""The GPU check's targets, in one table: what ``make gpu-check`` compares its measured
ratios with (:mod:`cwn_bench.bench.gpu_check`) and what the report's overhead section
quotes (:func:`cwn_bench.report.sections.overhead_section`). Torch-free.

CWN's cost is a time ratio CWN / plain (lower is better, at most ``value``); the training
harness's efficiency is an img/s ratio train / ``bench step`` (higher is better, at least
``value``).
"""

from __future__ import annotations

from typing import NamedTuple


class Target(NamedTuple):
    what: str
    bound: str  # "<=" (a cost) or ">=" (an efficiency)
    value: float

    def met(self, ratio: float) -> bool:
        return ratio <= self.value if self.bound == "<=" else ratio >= self.value

    def text(self) -> str:
        return f"{self.bound} {self.value}"


TARGETS = {
    "paper_conv": Target("paper conv fwd+bwd, cwn-triton / plain time", "<=", 1.02),
    "googlenet_convs": Target("googlenet_bn convs fwd+bwd, geometric mean of cwn-triton / plain time", "<=", 1.03),
    "googlenet_convs_eval": Target("googlenet_bn convs eval-fwd, geometric mean of cwn-triton / plain time", "<=",
                                   1.005),
    "train_step": Target("googlenet_bn training step (bench step), cwn / plain time", "<=", 1.03),
    "harness": Target("googlenet_bn compute img/s, cwn_bench.train.run / bench step (per batch size per GPU)", ">=",
                      0.98),
}


def describe() -> str:
    """The table as one sentence (for the report and the README)."""
    return "; ".join(f"{t.what} {t.text()}" for t in TARGETS.values())
