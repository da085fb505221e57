"""The paper's test errors (%), Huang et al. ICCV 2017, keyed by (dataset, model, method)
as the configs name them. None where the paper reports no top-5 error."""

from __future__ import annotations

import pandas as pd

# (dataset, model, method) -> (top-1 error %, top-5 error % or None, where in the paper)
PAPER: dict[tuple[str, str, str], tuple[float, float | None, str]] = {
    ("imagenet", "googlenet_bn", "plain"): (30.78, 11.14, "Table 4"),
    ("imagenet", "googlenet_bn", "wn"): (28.64, 9.70, "Table 4"),
    ("imagenet", "googlenet_bn", "cwn"): (26.10, 8.35, "Table 4"),
    ("cifar10", "resnet56", "plain"): (7.34, None, "Table 3"),
    ("cifar10", "resnet56", "wn"): (7.58, None, "Table 3"),
    ("cifar10", "resnet56", "cwn"): (6.85, None, "Table 3"),
    ("cifar100", "resnet56", "plain"): (29.38, None, "Table 3"),
    ("cifar100", "resnet56", "wn"): (29.85, None, "Table 3"),
    ("cifar100", "resnet56", "cwn"): (29.23, None, "Table 3"),
    ("cifar10", "vgg_a", "plain"): (14.33, None, "Sec. 4.2, Fig. 5a"),
    ("cifar10", "vgg_a", "wn"): (15.89, None, "Sec. 4.2, Fig. 5a"),
    ("cifar10", "vgg_a", "cwn"): (13.06, None, "Sec. 4.2, Fig. 5a"),
    ("cifar100", "googlenet_bn", "plain"): (25.52, None, "Sec. 4.2, Fig. 5b"),
    ("cifar100", "googlenet_bn", "wn"): (25.39, None, "Sec. 4.2, Fig. 5b"),
    ("cifar100", "googlenet_bn", "cwn"): (24.45, None, "Sec. 4.2, Fig. 5b"),
    ("svhn", "mlp", "plain"): (18.98, None, "Table 1"),  # 6 layers of 128 units
    ("svhn", "mlp", "wn"): (17.12, None, "Table 1"),
    ("svhn", "mlp", "cwn"): (16.16, None, "Table 1"),
}


def paper_columns(keys: pd.DataFrame) -> pd.DataFrame:
    """``paper_top1_err``, ``paper_top5_err``, ``paper_source`` for each row of ``keys``
    (columns dataset, model, method); NaN / empty where the paper has no such run."""
    found = [PAPER.get((d, m, k), (None, None, "")) for d, m, k in zip(keys.dataset, keys.model, keys.method)]
    return pd.DataFrame(found, index=keys.index, columns=["paper_top1_err", "paper_top5_err", "paper_source"]).astype(
        {"paper_top1_err": float, "paper_top5_err": float})
