"""The paper's test errors (%), Huang et al. ICCV 2017, keyed by (dataset, model, method)
as the configs name them. None where the paper reports no top-5 error.

:data:`PAPER` holds the runs with each model's own init (Tables 1, 3, 4; the MLPs' "random
init" [19] is Torch7's default, ``model.init: default`` or ``lecun``); :data:`PAPER_INIT` the
MLP runs of Table 2, keyed by (dataset, model, method, ``model.init``). The MLP numbers are
for plain SGD without BN: a run with ``model.batchnorm`` or another optimizer (Figure 4,
which prints no numbers) gets none. :data:`MATCH_KEYS` names the config keys a run's row
carries for this matching (``cwn_bench.report.runs``)."""

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
    ("svhn", "mlp", "nnn"): (17.99, None, "Table 1"),
    ("svhn", "mlp", "wn"): (17.12, None, "Table 1"),
    ("svhn", "mlp", "cwn"): (16.16, None, "Table 1"),
    ("yaleb", "mlp", "plain"): (6.16, None, "Table 1"),  # {128, 64, 48, 48}
    ("yaleb", "mlp", "nnn"): (6.58, None, "Table 1"),
    ("yaleb", "mlp", "wn"): (4.68, None, "Table 1"),
    ("yaleb", "mlp", "cwn"): (4.20, None, "Table 1"),
}

# (dataset, model, method, model.init) -> as PAPER: Table 2, Xavier-Init and He-Init
PAPER_INIT: dict[tuple[str, str, str, str], tuple[float, float | None, str]] = {
    ("yaleb", "mlp", "plain", "xavier"): (6.47, None, "Table 2, Xavier-Init"),
    ("yaleb", "mlp", "nnn", "xavier"): (5.47, None, "Table 2, Xavier-Init"),
    ("yaleb", "mlp", "wn", "xavier"): (4.68, None, "Table 2, Xavier-Init"),
    ("yaleb", "mlp", "cwn", "xavier"): (3.84, None, "Table 2, Xavier-Init"),
    ("svhn", "mlp", "plain", "xavier"): (17.78, None, "Table 2, Xavier-Init"),
    ("svhn", "mlp", "nnn", "xavier"): (17.83, None, "Table 2, Xavier-Init"),
    ("svhn", "mlp", "wn", "xavier"): (17.74, None, "Table 2, Xavier-Init"),
    ("svhn", "mlp", "cwn", "xavier"): (16.38, None, "Table 2, Xavier-Init"),
    ("yaleb", "mlp", "plain", "he"): (5.47, None, "Table 2, He-Init"),
    ("yaleb", "mlp", "nnn", "he"): (5.58, None, "Table 2, He-Init"),
    ("yaleb", "mlp", "wn", "he"): (5.58, None, "Table 2, He-Init"),
    ("yaleb", "mlp", "cwn", "he"): (4.21, None, "Table 2, He-Init"),
    ("svhn", "mlp", "plain", "he"): (18.35, None, "Table 2, He-Init"),
    ("svhn", "mlp", "nnn", "he"): (18.14, None, "Table 2, He-Init"),
    ("svhn", "mlp", "wn", "he"): (18.06, None, "Table 2, He-Init"),
    ("svhn", "mlp", "cwn", "he"): (16.71, None, "Table 2, He-Init"),
}

# row column -> (config key, value when unset): what decides which paper number a run matches
MATCH_KEYS = {"init": ("model.init", "default"), "batchnorm": ("model.batchnorm", False),
              "optimizer": ("optim.name", "sgd")}
_NONE = (None, None, "")


def paper_number(dataset: str, model: str, method: str, init: str = "default", batchnorm: bool = False,
                 optimizer: str = "sgd") -> tuple[float | None, float | None, str]:
    """(top-1 %, top-5 % or None, source) the paper reports for a run so configured, else
    ``(None, None, "")``."""
    if model == "mlp" and (batchnorm or optimizer != "sgd"):
        return _NONE
    if init == "default" or (init == "lecun" and model == "mlp"):
        return PAPER.get((dataset, model, method), _NONE)
    return PAPER_INIT.get((dataset, model, method, init), _NONE)


def paper_columns(keys: pd.DataFrame) -> pd.DataFrame:
    """``paper_top1_err``, ``paper_top5_err``, ``paper_source`` for each row of ``keys``
    (columns dataset, model, method, and those of :data:`MATCH_KEYS` where present, else their
    defaults); NaN / empty where the paper has no such run."""
    extra = {col: keys[col] if col in keys else pd.Series(default, index=keys.index)
             for col, (_, default) in MATCH_KEYS.items()}
    found = [paper_number(d, m, k, **dict(zip(extra, values)))
             for d, m, k, *values in zip(keys.dataset, keys.model, keys.method, *extra.values())]
    return pd.DataFrame(found, index=keys.index, columns=["paper_top1_err", "paper_top5_err", "paper_source"]).astype(
        {"paper_top1_err": float, "paper_top5_err": float})
