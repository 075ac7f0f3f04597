"""What the Train tab's evaluations cost, and how soon each cadence shows val <= 2.0 (in CPU terms).

    python benchmarks/evaluation_cost.py                          # the parts of one evaluation, in steps
    python benchmarks/evaluation_cost.py --cadence 300:10 175:4   # runs to val <= 2.0: every 300 steps over 10
                                                                  # batches (before), every 175 over 4 (now)

Both use the engine as the Train tab runs it on tiny Shakespeare: `--preset cpu` (the seed's model, batch 32),
keep=best, the model card writer; one torch thread, this thread's CPU time, so a shared machine inflates them less
than the wall clock.

* The parts: `estimate_loss` at 10, 4 and 2 batches of 128 a split, the 300-character sample, the checkpoint (with
  card and plot), each also as a number of the same run's training steps (interleaved rounds, medians).
* `--cadence INTERVAL:ITERS ...`: one run each from a fresh Trainer to the first evaluation at or below val 2.0;
  prints its step, the CPU seconds from the Trainer's construction, the median step and so the total in steps
  (CPU seconds / median step: what the cadence costs whatever the machine's speed), and every evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tinygpt.engine import Trainer, TrainerCallback  # noqa: E402
from tinygpt.publish import ModelCardWriter  # noqa: E402
from tinygpt.settings import TrainingSettings  # noqa: E402

TEXT = REPO / "data" / "tinyshakespeare.txt"


def tab_trainer(callbacks=(), **overrides) -> Trainer:
    settings = TrainingSettings.from_preset("cpu", threads=0, keep="best", max_seconds=3600, **overrides)
    out_dir = Path(tempfile.mkdtemp(prefix="tinygpt-eval-cost-")) / "run"
    return Trainer(settings, text=TEXT.read_text(encoding="utf-8"), out_dir=out_dir, data_name="tinyshakespeare",
                   callbacks=[ModelCardWriter(), *callbacks])


def parts(rounds: int) -> None:
    trainer = tab_trainer()
    s = trainer.settings
    for step in range(300):  # a model that writes something
        trainer.train_step(step)
    trainer.evaluate(300)
    trainer.save(300)

    def estimate(iters):
        def run():
            trainer.settings = dataclasses.replace(s, eval_iters=iters)
            try:
                trainer.estimate_loss()
            finally:
                trainer.settings = s
        return run

    cases = {"10 training steps": lambda: [trainer.train_step(300) for _ in range(10)],
             "estimate_loss, 10 batches of 128 a split": estimate(10),
             "estimate_loss, 4 batches": estimate(4), "estimate_loss, 2 batches": estimate(2),
             "the 300-character sample": trainer.sample, "the checkpoint (save, card, plot)": lambda: trainer.save(300)}
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            start = time.thread_time()
            run()
            times[name].append(time.thread_time() - start)
    step = statistics.median(times["10 training steps"]) / 10
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:42s} {1e3 * seconds:8.1f} ms CPU = {seconds / step:5.1f} steps")


class Watch(TrainerCallback):
    """Stops the run at its first evaluation with val <= 2.0; keeps every evaluation's step, val and CPU time."""

    def __init__(self):
        self.start, self.rows, self.step_seconds = time.thread_time(), [], []

    def on_evaluate(self, trainer, record):
        self.rows.append((record["step"], record["val_loss"], time.thread_time() - self.start))
        if record["val_loss"] <= 2.0:
            trainer.stop()


def cadence(interval: int, iters: int) -> None:
    watch = Watch()
    trainer = tab_trainer([watch], eval_interval=interval, eval_iters=iters)
    train_step = trainer.train_step

    def timed(step):
        start = time.thread_time()
        try:
            return train_step(step)
        finally:
            watch.step_seconds.append(time.thread_time() - start)

    trainer.train_step = timed
    trainer.train()
    step, val, seconds = next(((s, v, c) for s, v, c in watch.rows if v <= 2.0), watch.rows[-1])
    per_step = statistics.median(watch.step_seconds)
    print(f"every {interval} steps, {iters} batches: val {val:.4f} at step {step}, {seconds:.1f} s CPU; step "
          f"{1e3 * per_step:.1f} ms -> {seconds / per_step:.0f} steps' worth")
    print("   evaluations (step, val, CPU s): " + ", ".join(f"({s}, {v:.3f}, {c:.1f})" for s, v, c in watch.rows))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cadence", nargs="+", metavar="INTERVAL:ITERS", help="runs to val <= 2.0 instead of the parts")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load = " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    print(f"torch {torch.__version__}, 1 thread, thread CPU time, load average {load}")
    if not args.cadence:
        parts(args.rounds)
    for item in args.cadence or ():
        interval, iters = (int(x) for x in item.split(":"))
        cadence(interval, iters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
