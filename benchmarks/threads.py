"""How many CPU threads should train.py use for tinygpt's small models? (issue 22: the default thread count)

    python benchmarks/threads.py                      # seed and cpu presets, 1 / 2 / every core, 3 rounds
    python benchmarks/threads.py --steps 50 --rounds 1

Each case runs in a fresh process (OpenMP sizes its pool once): the engine's Trainer on tiny Shakespeare with the
preset's settings and `--threads N` (0 = torch's default, one per core), then `--steps` training steps and one
loss estimate (the step-0 evaluation a newcomer waits for before train.py's second line). Cases run interleaved
(A, B, C, A, B, C, ...) so a busy machine slows them alike. Printed per case: the median wall and CPU seconds
(all threads of the process) per step and per evaluation, and the machine's load average before and after.
Imports and start-up are not counted: they do not depend on the thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CASE = r"""
import json, sys, tempfile, time
import torch
from tinygpt.engine import Trainer
from tinygpt.settings import TrainingSettings

preset, threads, steps, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
settings = TrainingSettings.from_preset(preset, threads=threads)
with tempfile.TemporaryDirectory() as out:
    trainer = Trainer(settings, data_path=data, out_dir=out + "/run")
    def timed(action):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        return time.perf_counter() - wall, time.process_time() - cpu
    trainer.train_step(0)  # warm-up: first-call allocations
    step = timed(lambda: [trainer.train_step(i) for i in range(1, steps + 1)])
    evaluation = timed(trainer.estimate_loss)
    trainer.close()
print(json.dumps({"threads": torch.get_num_threads(), "step_wall": step[0] / steps, "step_cpu": step[1] / steps,
                  "eval_wall": evaluation[0], "eval_cpu": evaluation[1]}))
"""


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="seed,cpu")
    p.add_argument("--threads", default="1,2,0", help="thread counts to compare (0 = torch's default: every core)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", metavar="OUT", help="write the raw numbers here")
    args = p.parse_args()
    cases = [(preset, int(t)) for preset in args.presets.split(",") for t in args.threads.split(",")]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the thread count is the case's alone
    env["PYTHONPATH"] = str(REPO)
    results = {case: [] for case in cases}
    print(f"{os.cpu_count()} CPU(s); load average before: {load()}", flush=True)
    for _ in range(args.rounds):
        for preset, threads in cases:
            out = subprocess.run([sys.executable, "-c", CASE, preset, str(threads), str(args.steps),
                                  str(REPO / "data" / "tinyshakespeare.txt")], env=env, capture_output=True,
                                 text=True, cwd=REPO)
            if out.returncode:
                sys.exit(out.stderr)
            results[(preset, threads)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"load average after: {load()}")
    print(f"{'preset':8} {'threads':>8} {'ms/step wall':>13} {'ms/step CPU':>12} {'eval s wall':>12} "
          f"{'eval s CPU':>11}")
    for (preset, threads), runs in results.items():
        def median(key):
            return statistics.median(r[key] for r in runs)
        shown = f"{threads} ({runs[0]['threads']})" if threads == 0 else str(threads)
        print(f"{preset:8} {shown:>8} {1000 * median('step_wall'):13.1f} {1000 * median('step_cpu'):12.1f} "
              f"{median('eval_wall'):12.2f} {median('eval_cpu'):11.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{p}/{t}": r for (p, t), r in results.items()}, indent=2))


if __name__ == "__main__":
    main()
