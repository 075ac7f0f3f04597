"""The learning-rate schedule: a linear warm-up, then constant (the seed's rate) or a cosine decay to a floor.

The rate is set by torch's `LambdaLR`: `lr_factor(settings, step)` is the multiple of `--learning-rate` for the
optimizer step taken at `step` (0-based), and the scheduler steps once after every optimizer step. The
schedule is a pure function of the settings and the step, so a resumed run rebuilds its scheduler at its step
(`lr_scheduler(optimizer, settings, step)`) instead of saving one: any checkpoint, old or new, continues with the
rates of a straight run, and a resume with another --learning-rate or --min-lr uses the new values.

The factor is written here rather than taken from transformers' `get_cosine_with_min_lr_schedule_with_warmup`,
which has the same cosine but warms up from 0 (its step 0 does not train) and, past its horizon, climbs back to
the peak (by twice --lr-decay-iters) instead of holding the floor, while --lr-decay-iters is a horizon a run
extended with --resume --max-iters keeps. The cpu preset is tuned on this schedule.
"""

from __future__ import annotations

import functools
import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

DEFAULT_FLOOR = 0.1  # --min-lr not given: the cosine ends at a tenth of --learning-rate


def lr_factor(settings, step: int) -> float:
    """The multiple of `settings.learning_rate` for the optimizer step taken at `step` (0-based)."""
    if step < settings.warmup_iters:  # 1/(w+1), 2/(w+1), ...: the first step already trains
        return (step + 1) / (settings.warmup_iters + 1)
    if settings.lr_schedule == "constant":
        return 1.0
    floor = DEFAULT_FLOOR if settings.min_lr is None else settings.min_lr / settings.learning_rate
    if step >= settings.lr_decay_iters:
        return floor
    progress = (step - settings.warmup_iters) / (settings.lr_decay_iters - settings.warmup_iters)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - floor)


def lr_scheduler(optimizer: Optimizer, settings, step: int = 0) -> LambdaLR:
    """torch's LambdaLR over `lr_factor`, positioned so the optimizer's next step (`step`) gets its rate."""
    for group in optimizer.param_groups:  # the peak is this run's --learning-rate, a resumed run's too
        group["initial_lr"] = settings.learning_rate
    return LambdaLR(optimizer, functools.partial(lr_factor, settings), last_epoch=step - 1)
