"""ms per training step: train.py's loop against the blog series' own loop, same dims, same process.

    python tests/train_bench.py [--preset seed] [--threads 1] [--rounds 7] [--steps 100]

The two loops run in alternating rounds (so a busy machine slows both alike) and the medians are compared.
The seed's loop is the final post's, verbatim in spirit: its `GPT` class (tests/seed_gpt.py), a `get_batch`
that stacks Python slices drawn from the global RNG, `AdamW(lr=1e-3)`, `model(xb, yb)`, zero_grad, backward,
step. train.py's is `TrainingRun.train_step` as the command runs it (Accelerate, tinygpt's model, one gather).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_gpt import build_seed_gpt  # noqa: E402

from tinygpt import training  # noqa: E402


def seed_loop(settings, data):
    """The series' training step, as published (with its hyper-parameters taken from `settings`)."""
    B, T = settings["batch_size"], settings["block_size"]
    model = build_seed_gpt(int(data.max()) + 1, settings["n_embd"], settings["n_head"], settings["n_layer"], T,
                           settings["dropout"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"])
    data = data.long()

    def get_batch():
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([data[i:i + T] for i in ix])
        y = torch.stack([data[i + 1:i + T + 1] for i in ix])
        return x, y

    def step():
        xb, yb = get_batch()
        logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="seed", choices=sorted(training.PRESETS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100, help="steps per round")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    training.quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        given = {"preset": args.preset, "out_dir": str(Path(tmp) / "out"), "threads": args.threads}
        run = training.setup(given, time.perf_counter())
        settings = run.s
        ours = lambda step=[0]: run.train_step(step.__setitem__(0, step[0] + 1) or step[0])  # noqa: E731
        seed = seed_loop(settings, run.train_data)
        timings = {"train.py": [], "seed loop": []}
        for name, fn in (("train.py", ours), ("seed loop", seed)):  # warm-up
            for _ in range(10):
                fn()
        for _ in range(args.rounds):
            for name, fn in (("train.py", ours), ("seed loop", seed)):
                start = time.perf_counter()
                for _ in range(args.steps):
                    fn()
                timings[name].append((time.perf_counter() - start) / args.steps * 1000)
    dims = {k: settings[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size")}
    print(f"preset {args.preset} {dims}, torch threads {torch.get_num_threads()}, {args.rounds} rounds x {args.steps} steps")
    for name, values in timings.items():
        print(f"  {name:10s} median {statistics.median(values):7.2f} ms/step   (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    ratio = statistics.median(timings["seed loop"]) / statistics.median(timings["train.py"])
    print(f"  train.py is {ratio:.2f}x the seed loop's speed")


if __name__ == "__main__":
    main()
