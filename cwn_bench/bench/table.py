"""Plain-text tables of benchmark rows for stdout (numbers become strings only here)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

CONV_COLUMNS = ("shape", "variant", "pass", "dtype", "memory_format", "median_ms", "iqr_ms", "ratio_vs_plain")
_KEY = ("variant", "pass", "dtype", "memory_format")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return "-" if value is None else str(value)


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """``rows`` as aligned text under a header of ``columns``; a missing field is ``-``."""
    cells = [list(columns)] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells)


def geomean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (variant, pass, dtype, memory format): the geometric mean of ``ratio_vs_plain``
    over the shapes measured, and how many there were."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        if row.get("kind") == "measurement":
            groups[tuple(row[k] for k in _KEY)].append(row["ratio_vs_plain"])
    return [{**dict(zip(_KEY, key)), "shapes": len(ratios),
             "geomean_ratio": math.exp(sum(map(math.log, ratios)) / len(ratios))} for key, ratios in groups.items()]


def print_table(rows: list[dict[str, Any]]) -> None:
    """The conv benchmark's measurements, skipped variants, and (when several shapes were
    measured) the geometric-mean ratio per variant."""
    measured = [r for r in rows if r.get("kind") == "measurement"]
    print(format_table(measured, CONV_COLUMNS))
    for row in rows:
        if row.get("kind") == "skipped":
            print(f"skipped: {row['shape']} {row['variant']} {row['pass']} {row['dtype']} "
                  f"{row['memory_format']}: {row['reason']}")
    summary = geomean_rows(measured)
    if any(s["shapes"] > 1 for s in summary):
        print("\ngeometric mean of ratio_vs_plain over shapes")
        print(format_table(summary, (*_KEY, "shapes", "geomean_ratio")))
