"""What a run prints while it trains: a tqdm bar on a terminal, plain lines in SLURM logs."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A tqdm bar when stderr is a terminal (and tqdm is installed), else a plain line every
    ``every`` steps (readable in SLURM logs).  Silent on ranks other than 0."""

    def __init__(self, enabled: bool, every: int, epochs: int) -> None:
        self.enabled, self.every, self.epochs = enabled, max(every, 1), epochs
        self.tty = sys.stderr.isatty()
        self.bar: Any = None  # a tqdm bar while an epoch runs on a terminal

    def start_epoch(self, epoch: int, steps: int, start_step: int) -> None:
        self.epoch, self.steps, self.t0, self.start = epoch, steps, time.perf_counter(), start_step
        if self.enabled and self.tty:
            try:  # imported here: a bare GPU box (make gpu-check) has torch but not tqdm
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=steps, initial=start_step, desc=f"epoch {epoch + 1}/{self.epochs}",
                            file=sys.stderr, dynamic_ncols=True, leave=False)

    def tick(self, step: int) -> None:
        """Move the bar to ``step`` (host only, every step)."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def step(self, step: int, loss: float, lr: float, img_per_s: float, data_share: float) -> None:
        """``step`` counts steps done in this epoch (1-based); called once its loss is on
        the host (at the next sync point), every ``every`` steps."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", img_s=f"{img_per_s:.0f}")
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(step - self.start, 1) * (self.steps - step)
        print(f"epoch {self.epoch + 1}/{self.epochs} step {step}/{self.steps}  loss {loss:.4f}  lr {lr:.4g}  "
              f"{img_per_s:.0f} img/s  data {100 * data_share:.0f}%  eta {eta:.0f}s", file=sys.stderr, flush=True)

    def wants(self, step: int) -> bool:
        return self.enabled and step % self.every == 0

    def end_epoch(self, rec: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            print(f"epoch {rec['epoch']}/{self.epochs}: train loss {rec['train_loss']:.4f} "
                  f"top-1 err {rec['train_top1_err']:.2f}% | val loss {rec['val_loss']:.4f} "
                  f"top-1 err {rec['val_top1_err']:.2f}% top-5 err {rec['val_top5_err']:.2f}% | "
                  f"{rec['img_per_s']:.0f} img/s ({rec['img_per_s_per_gpu']:.0f}/gpu), "
                  f"data wait {100 * rec['data_wait_share']:.0f}%, {rec['wall_s']:.1f}s", file=sys.stderr, flush=True)
