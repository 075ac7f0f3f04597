"""Fine-tuning vs training from scratch on a text that is not Shakespeare, with the same time budget.

    python benchmarks/finetune.py                 # 30 s per run, the table for benchmarks/README.md
    python benchmarks/finetune.py --seconds 5     # a quick look
    python benchmarks/finetune.py --steps 1300    # a step budget instead (what 30 s is on a quiet 2-core laptop)

The text is Python's own documentation: the language reference topics that `help()` shows
(`pydoc_data.topics`, shipped with every CPython), joined in sorted order: English technical prose with code,
~465,000 characters on Python 3.11. Each run is `python train.py --preset cpu --max-seconds SECONDS` in its own
process, one after the other: from scratch, then from the bundled tiny-Shakespeare model (`--init-from
checkpoints/tinyshakespeare`, which has the same dimensions as --preset cpu), then that again with a lower
learning rate. The table gives the val loss each reaches in the budget, and at a fixed step (a busy machine
changes how many steps fit in the budget, not what a step does). On a shared machine, `--steps N` gives every
run the same number of steps instead of the same wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "checkpoints" / "tinyshakespeare"
RUNS = [  # (name, extra train.py flags)
    ("from scratch", []),
    ("fine-tuned from checkpoints/tinyshakespeare", ["--init-from", str(BASE)]),
    ("fine-tuned, --learning-rate 3e-3 --min-lr 3e-4", ["--init-from", str(BASE), "--learning-rate", "3e-3",
                                                         "--min-lr", "3e-4"]),
]


def python_docs_text() -> str:
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="time budget per run (default: 30)")
    p.add_argument("--steps", type=int, help="a step budget per run instead of --seconds")
    p.add_argument("--eval-interval", type=int, default=50, help="steps between val estimates (default: 50)")
    p.add_argument("--at-step", type=int, help="also report the val loss at this step (default: the last "
                   "evaluated step every run reached)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1, as --preset cpu)")
    p.add_argument("--json", metavar="OUT", help="also save every run's evaluations")
    args = p.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "python-docs.txt"
        data.write_text(python_docs_text(), encoding="utf-8")
        text = data.read_text(encoding="utf-8")
        print(f"text: pydoc_data.topics of Python {sys.version.split()[0]}, {len(text):,} characters, "
              f"{len(set(text))} distinct", flush=True)
        for name, flags in RUNS:
            out = Path(tmp) / f"run{len(results)}"
            command = [sys.executable, str(REPO / "train.py"), "--data", str(data), "--out-dir", str(out),
                       "--preset", "cpu", "--eval-interval", str(args.eval_interval), "--threads", str(args.threads),
                       *(["--max-iters", str(args.steps)] if args.steps else ["--max-seconds", str(args.seconds)]),
                       *flags]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            if done.returncode != 0:
                print(done.stdout + done.stderr, file=sys.stderr)
                return 1
            state = json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))
            log = state["log_history"]
            results.append({"run": name, "steps": state["global_step"], "val_at_0": log[0]["val_loss"],
                            "val_final": log[-1]["val_loss"], "best_val": state["best_val_loss"],
                            "vocab_size": state["data"]["vocab_size"], "wall_s": log[-1]["elapsed_s"],
                            "cpu_s": cpu, "log": log})
            print(f"{name}: {state['global_step']} steps, val {log[-1]['val_loss']:.4f}", flush=True)

    at_step = args.at_step or min(r["steps"] // args.eval_interval * args.eval_interval for r in results)
    for r in results:
        r["val_at_step"] = next((e["val_loss"] for e in r["log"] if e["step"] == at_step), None)
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"
    print(f"\n| run ({budget} each) | steps | wall (s) | CPU (s) | val at step 0 | val at step {at_step} | "
          "val at the end | vocabulary |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        at = f"{r['val_at_step']:.4f}" if r["val_at_step"] is not None else "-"
        print(f"| {r['run']} | {r['steps']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['val_at_0']:.4f} | {at} | "
              f"**{r['val_final']:.4f}** | "
              f"{r['vocab_size']} |")
    if args.json:
        summary = {"seconds": None if args.steps else args.seconds, "steps": args.steps, "at_step": at_step, "runs": results}
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
