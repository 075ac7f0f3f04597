"""Is the loss still a number? The loop's training losses, checked for NaN/inf without slowing the loop down.

Reading a loss (`.item()`) waits for the device; so the losses are kept as tensors and checked together, with one
sync, at every evaluation and save and at least every FINITE_CHECK_EVERY steps: a diverged run stops within that
many steps, naming the first step whose loss was not finite (on any process).
"""

from __future__ import annotations

import torch

FINITE_CHECK_EVERY = 100


class LossWatch:
    """The training losses since the last check, as (step, 0-dim tensor); `accelerator` compares processes."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.unchecked: list[tuple[int, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor) -> bool:
        """Keep the loss of `step`; True when it is time to check (every FINITE_CHECK_EVERY steps)."""
        self.unchecked.append((step, loss.detach()))
        return len(self.unchecked) >= FINITE_CHECK_EVERY

    def first_bad(self) -> tuple[int, float] | None:
        """(step, loss) of the first NaN or infinite loss since the last check, on any process, or None; forgets the
        losses it checked. Every process must call it at the same step (it gathers across them)."""
        losses, self.unchecked = self.unchecked, []
        bad = None
        if losses:
            finite = torch.isfinite(torch.stack([loss for _, loss in losses]))
            if not bool(finite.all()):
                index = int((~finite).nonzero()[0])
                bad = (losses[index][0], losses[index][1].item())
        if self.accelerator.num_processes > 1:  # every process stops at the same check, naming the earliest bad step
            first = torch.tensor([bad[0] if bad else -1], device=self.accelerator.device)
            steps = self.accelerator.gather(first)
            steps = steps[steps >= 0]
            if len(steps) and (bad is None or int(steps.min()) < bad[0]):
                bad = (int(steps.min()), float("nan"))
        return bad
