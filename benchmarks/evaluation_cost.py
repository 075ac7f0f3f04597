"""What the Train tab's evaluations cost, and how soon each cadence shows val <= 2.0 (in CPU terms).

    python benchmarks/evaluation_cost.py                          # the parts of one evaluation, in steps
    python benchmarks/evaluation_cost.py --cadence 300:10 175:4:350:0 --repeat 3
                          # runs to val <= 2.0: every 300 steps over 10 batches, each with a sample and a checkpoint
                          # (the issue's); every 175 over 4, a sample every 350, a checkpoint only at the end (now)

Both use the engine as the Train tab runs it on tiny Shakespeare: `--preset cpu` (the seed's model, batch 32),
keep=best, the model card writer; one torch thread, this thread's CPU time, so a shared machine inflates them less
than the wall clock.

* The parts: `estimate_loss` at 10, 4 and 2 batches of 128 a split, the 300-character sample, the checkpoint (with
  card and plot), each also as a number of the same run's training steps (interleaved rounds, medians).
* `--cadence INTERVAL:ITERS[:SAMPLE_INTERVAL[:SAVE_INTERVAL[:SAMPLE_LENGTH]]] ...`: one run each from a fresh
  Trainer to the first evaluation at or below val 2.0 (eval_interval, eval_iters, and the sample_interval and
  save_interval settings, left out: at every evaluation; the sample's characters, 300 if left out); prints its step,
  the CPU seconds from the Trainer's construction split into its parts (the steps, the loss estimates, the samples,
  the checkpoints), the median step and so the total in steps (the steps taken, plus the rest's CPU seconds / the
  median step: what the cadence costs whatever the machine's speed), and every evaluation.
  `--repeat N` runs them all N times, interleaved, and prints each run's ratio to the first cadence's.
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

from tinygpt.engine import SAMPLE_LENGTH, Trainer, TrainerCallback  # noqa: E402
from tinygpt.publish import ModelCardWriter  # noqa: E402
from tinygpt.settings import TrainingSettings  # noqa: E402

TEXT = REPO / "data" / "tinyshakespeare.txt"


def tab_trainer(callbacks=(), sample_length=SAMPLE_LENGTH, **overrides) -> Trainer:
    settings = TrainingSettings.from_preset("cpu", threads=0, keep="best", max_seconds=3600, **overrides)
    out_dir = Path(tempfile.mkdtemp(prefix="tinygpt-eval-cost-")) / "run"
    return Trainer(settings, text=TEXT.read_text(encoding="utf-8"), out_dir=out_dir, data_name="tinyshakespeare",
                   callbacks=[ModelCardWriter(), *callbacks], sample_length=sample_length)


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
        self.start, self.rows = time.thread_time(), []

    def on_evaluate(self, trainer, record):
        self.rows.append((record["step"], record["val_loss"], time.thread_time() - self.start, "sample" in record))
        if record["val_loss"] <= 2.0:
            trainer.stop()


PARTS = ("train_step", "estimate_loss", "sample", "save")


def cadence(spec: str) -> dict:
    """One run of the cadence `spec` (INTERVAL:ITERS[:SAMPLE_INTERVAL[:SAVE_INTERVAL[:SAMPLE_LENGTH]]]) to its
    first val <= 2.0: the CPU seconds until then, split into its parts, and the same in median training steps."""
    interval, iters, *more = (int(x) for x in spec.split(":"))
    rare = dict(zip(("sample_interval", "save_interval", "sample_length"), more))
    watch = Watch()
    trainer = tab_trainer([watch], eval_interval=interval, eval_iters=iters, **rare)
    built = time.thread_time() - watch.start
    spent = {name: [] for name in PARTS}

    def timed(name, method):
        def run(*args, **kwargs):
            start = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                if not watch.rows or watch.rows[-1][1] > 2.0:  # until the page could show val <= 2.0
                    spent[name].append(time.thread_time() - start)
        return run

    for name in PARTS:
        setattr(trainer, name, timed(name, getattr(trainer, name)))
    trainer.train()
    step, val, seconds, _ = next(((s, v, c, d) for s, v, c, d in watch.rows if v <= 2.0), watch.rows[-1])
    per_step = statistics.median(spent["train_step"])
    parts = {"building the Trainer": built, **{name: sum(v) for name, v in spent.items()}}
    parts["the rest (loop, callbacks, keep-best)"] = seconds - sum(parts.values())
    # What the cadence costs in steps: the steps it took to get there, plus everything else in median steps of the
    # same run (a busy machine slows both alike; the steps' own CPU time, which swings with the load over a run of
    # 10-20 s, is left out of the ratio).
    overhead = sum(value for name, value in parts.items() if name != "train_step") / per_step
    sampled = [s for s, _, _, d in watch.rows if d and s <= step]
    print(f"{spec} (every {interval} steps, {iters} batches{''.join(f', {k} {v}' for k, v in rare.items())}): "
          f"val {val:.4f} at step {step}, {seconds:.2f} s CPU; median step {1e3 * per_step:.2f} ms; "
          f"{step} steps + {overhead:.0f} steps' worth of the rest = {step + overhead:.0f}")
    for name, value in parts.items():
        print(f"   {name:40s} {value:6.2f} s CPU  {value / per_step:6.0f} steps' worth")
    print("   evaluations (step, val, CPU s): " + ", ".join(f"({s}, {v:.3f}, {c:.1f})" for s, v, c, _ in watch.rows)
          + f"; sampled at {sampled}")
    return {"spec": spec, "step": step, "seconds": seconds, "per_step": per_step, "worth": step + overhead}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cadence", nargs="+", metavar="INTERVAL:ITERS", help="runs to val <= 2.0 instead of the parts")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeat", type=int, default=1, help="--cadence: rounds of runs (each round runs every cadence)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    load = " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    print(f"torch {torch.__version__}, 1 thread, thread CPU time, load average {load}")
    if not args.cadence:
        parts(args.rounds)
    results = {}
    for _ in range(args.repeat if args.cadence else 0):  # interleaved: each round runs every cadence once
        for spec in args.cadence:
            results.setdefault(spec, []).append(cadence(spec))
    if len(results) > 1:
        first, *others = results
        base = [r["worth"] for r in results[first]]
        for spec in others:
            ratios = [r["worth"] / b for r, b in zip(results[spec], base)]
            print(f"{spec} / {first} in steps' worth: {', '.join(f'{x:.3f}' for x in ratios)} "
                  f"(median {statistics.median(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
