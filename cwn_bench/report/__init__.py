"""``cwn-bench report``: run dirs and bench JSONL in, the paper's tables and curves out.

The read step turns every input into one long tidy table (one row per epoch record of
every run, see :mod:`cwn_bench.report.read`); tables are groupby/agg over it. This
package reads files only: it imports nothing from train/, models/ or launch/.
"""

from cwn_bench.report.write import write_report

__all__ = ["write_report"]
