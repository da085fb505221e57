"""One training run: loop, distributed init, checkpoints, metrics, environment record.

``run(cfg, run_dir)`` is the entry point (the CLI's ``train`` and each SLURM task call it).
"""

from cwn_bench.train.run import COMPLETED, PREEMPTED, TrainingFailed, run
from cwn_bench.train.stopping import DEFAULT_SIGNALS

__all__ = ["COMPLETED", "DEFAULT_SIGNALS", "PREEMPTED", "TrainingFailed", "run"]
