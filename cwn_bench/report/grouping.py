"""Group runs by what ran: the resolved config recorded in run.json (seed, name and the
``sweep.*`` recipe left out) and the world size, never by the stored ``config_hash``
alone. Two runs whose recorded configs differ in any other key are never merged; two
whose configs are equal are merged even when their stored hashes differ (a hash written
by another version of the code)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

# Keys that do not make two runs different experiments: seed is what is averaged over,
# name is a label (and ``sweep.*``, the recipe that produced the point, is skipped too).
NOT_COMPARED = ("seed", "name")


def compared(flat: dict[str, Any]) -> dict[str, Any]:
    """The keys of a flattened config that make an experiment (seed, name, sweep.* left out)."""
    return {k: v for k, v in flat.items() if k not in NOT_COMPARED and k.split(".")[0] != "sweep"}


def experiment_key(flat: dict[str, Any]) -> str:
    """A stable 12-hex-digit id of a run's config: its compared keys (world size aside)."""
    text = json.dumps(compared(flat), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def group_ids(runs: pd.DataFrame) -> pd.Series:
    """Per run (columns ``config``: flattened dict, ``world_size``, ``config_hash``), its
    group id ``<experiment key>-w<world size>``; a run.json without a config keeps its
    stored hash as the key, since there is nothing else to compare."""
    ids = [f"{experiment_key(c) if c else h[:12]}-w{w}"
           for c, w, h in zip(runs.config, runs.world_size, runs.config_hash)]
    return pd.Series(ids, index=runs.index, dtype=object)


def merged_hashes(runs: pd.DataFrame) -> list[str]:
    """One line per group whose runs carry different stored config hashes (merged because
    their resolved configs are equal)."""
    lines = []
    for group, members in runs.groupby("group"):
        hashes = sorted(set(members.config_hash.str[:8]))
        if len(hashes) > 1:
            lines.append(f"{len(members)} runs of {members.dataset.iloc[0]}/{members.model.iloc[0]}/"
                         f"{members.method.iloc[0]} merged: equal resolved configs, stored config_hash "
                         f"{', '.join(hashes)}")
    return lines
