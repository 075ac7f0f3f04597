"""The line of trainings: how many run at once (`slots`), who waits behind them, each one's place and wait.

Kept here rather than in gradio's queue (whose `concurrency_limit` would do the waiting) because the page says a
place in words ("2nd in line, about 40 s"), Stop takes a training out of the line, and the page and /train wait
in the same line. A job here is anything with `seconds` (its time budget) and `time_left()`.
"""

from __future__ import annotations

import threading

from ..demo import BadInput

TRAIN_CONCURRENCY = 1  # trainings at once (--train-concurrency); more wait in line and see their place
MAX_WAITING = 16  # trainings allowed to wait in line (each holds its text, up to 10 MB); more are turned away


class WaitingLine:
    def __init__(self, slots: int = TRAIN_CONCURRENCY, max_waiting: int = MAX_WAITING):
        self.slots, self.max_waiting = slots, max_waiting
        self.running: list = []
        self.waiting: list = []
        self._lock = threading.Lock()

    def join(self, job) -> None:
        with self._lock:
            if len(self.waiting) >= self.max_waiting:
                raise BadInput(f"{len(self.waiting)} trainings are already waiting, the most this server lets wait. "
                               "Try again in a few minutes.")
            self.waiting.append(job)

    def leave(self, job) -> None:
        with self._lock:
            for jobs in (self.waiting, self.running):
                if job in jobs:
                    jobs.remove(job)

    def try_start(self, job) -> bool:
        """Whether `job` may start now (it then counts as running)."""
        with self._lock:
            free = self.slots - len(self.running)
            if job in self.waiting[:max(0, free)]:
                self.waiting.remove(job)
                self.running.append(job)
                return True
            return False

    def place(self, job) -> tuple[int, float]:
        """(1 for next in line, 2 behind one, ...; about how many seconds until it starts): the running trainings'
        time left, then each one ahead taking its whole budget on the first slot to free up."""
        with self._lock:
            ahead = self.waiting[: self.waiting.index(job)] if job in self.waiting else []
            free_at = sorted(j.time_left() for j in self.running)
            free_at += [0.0] * max(0, self.slots - len(free_at))
            for other in ahead:
                free_at.sort()
                free_at[0] += other.seconds
            return len(ahead) + 1, min(free_at, default=0.0)
