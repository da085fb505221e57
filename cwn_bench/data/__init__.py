"""Data for training: ``build(cfg, rank, world_size, device) -> DataModule``.

``data.loader`` picks the backend: ``dali`` (nvJPEG on a GPU, CPU-only otherwise), ``torch``
(PIL in DataLoader workers) or ``synthetic`` (random batches on the device). ``data.name``
picks the data: an ImageNet-layout folder (``imagenet``, ``digits``), CIFAR-10/100 / SVHN
from their published files or Extended Yale B's ``CroppedYale`` folder (``yaleb``), all under
``data.root``; ``data.holdout`` holds a seeded share of the train split out for validation.
Nothing is downloaded.
"""

from __future__ import annotations

import torch

from cwn_bench.config import Config
from cwn_bench.data import folder, holdout, small, yaleb
from cwn_bench.data.digits import make_digits_dataset
from cwn_bench.data.module import DataModule, Stats
from cwn_bench.data.sized_jpegs import make_sized_jpegs
from cwn_bench.data.sources import FileSource
from cwn_bench.data.synthetic import SyntheticData
from cwn_bench.data.torch_loader import TorchData
from cwn_bench.errors import UserError

__all__ = ["DataModule", "Stats", "build", "make_digits_dataset", "make_sized_jpegs"]


def _num_classes(cfg: Config, found: int) -> int:
    wanted = cfg.data.num_classes
    if wanted is not None and wanted < found:
        raise UserError(f"data.num_classes={wanted}, but {cfg.data.root} has {found} classes")
    return wanted or found


def build(cfg: Config, rank: int = 0, world_size: int = 1, device: torch.device | None = None,
          stats: Stats | None = None) -> DataModule:
    """The data module of ``cfg`` for ``rank`` of ``world_size``; batches land on ``device`` (CPU if None).
    With ``data.normalize: dataset`` inputs are standardised with ``stats`` (e.g. from a checkpoint)
    or, when None, with statistics from a pass over the train split, each rank of a process group
    decoding a share of it (see :meth:`DataModule.dataset_stats`: every rank must call ``build``)."""
    device = torch.device("cpu") if device is None else device
    d = cfg.data
    holdout.check(d)
    if d.loader == "synthetic" or d.name == "synthetic":
        module: DataModule = SyntheticData(cfg, rank, world_size, device)
    else:
        if d.root is None:
            raise UserError(f"data.root is not set; data.name={d.name} reads its files from a local folder")
        seeds = {}
        if d.name in small.NAMES:
            train, val, classes = small.load(d.name, d.root, d.grayscale)
        elif d.name == "yaleb":
            if d.loader == "dali":
                raise UserError("data.name=yaleb: the in-memory grey PGM faces are read with data.loader=torch")
            train, val, classes = yaleb.load(d.root, d.grayscale, d.split_seed)
            seeds["test"] = d.split_seed
        else:
            files, labels, classes = folder.scan_split(d.root, "train")
            val_files, val_labels, _ = folder.scan_split(d.root, "val", classes)
            train, val = FileSource(files, labels, d.grayscale), FileSource(val_files, val_labels, d.grayscale)
        held = None
        if d.holdout is not None:
            train, held = holdout.split(train, d.holdout, d.split_seed)
            seeds["holdout"] = d.split_seed
        num_classes = _num_classes(cfg, len(classes))
        if d.loader == "dali":
            from cwn_bench.data.dali_loader import DaliData  # DALI is imported only here
            module = DaliData(cfg, rank, world_size, device, train, val, num_classes, held)
        else:
            module = TorchData(cfg, rank, world_size, device, train, val, num_classes, held)
        module.splits = {"holdout_size": module.holdout_size, "split_seeds": seeds}
    if d.normalize == "dataset":
        module.use_dataset_stats(stats)
    return module
