"""Learning-rate schedule: linear warm-up, then cosine decay to ``min_ratio`` of the peak."""

from __future__ import annotations

import math


def get_lr(step: int, *, base_lr: float, warmup_steps: int, max_steps: int,
           min_ratio: float = 0.01) -> float:
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
