"""The model file before and after a change, measured in one interleaved run: train step and decoding speed.

    python benchmarks/before_after.py                    # this checkout's tinygpt/modeling_tinygpt.py vs main's
    python benchmarks/before_after.py --rev HEAD~3 --rounds 9 --threads 1
    python benchmarks/before_after.py --engine           # the engine's train step and an evaluation's parts too

The "before" files (`git show REV:tinygpt/{configuration,modeling}_tinygpt.py`) are imported as a separate package,
so both versions live in one process. Both models hold the same weights, and the rounds alternate before/after
(after/before in every other round), so a busy machine slows them alike. Each cell is the median over rounds; the
ratio is the median of the per-round ratios (after / before time: below 1.00 is faster). The decoded texts must be
equal.

--engine also imports the whole `tinygpt` package of REV (as `tinygpt_rev`) and runs two engine `Trainer`s on
tiny Shakespeare with the same settings and seed, one of each version: `Trainer.train_step` as train.py and the
Train tab run it (`--preset cpu`, batch 32, the tab's step; and the seed's preset, batch 16), and the parts of an
evaluation (`estimate_loss` at the cpu preset's size, 2 x 10 batches of 128; the 300-character sample). Both
trainers take the same steps, so their weights must stay bit-identical: the run fails if they do not.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tinygpt import TinyGPTConfig, TinyGPTForCausalLM  # noqa: E402

TRAIN = {  # name: (n_layer, n_embd, n_head, block_size, batch_size)
    "train step, the series' size (2L/64, block 32, batch 16)": (2, 64, 4, 32, 16),
    "train step, 4L/128, block 64, batch 12": (4, 128, 4, 64, 12),
}
DECODE = {  # name: (n_layer, n_embd, n_head, block_size, generate() kwargs)
    "250 greedy chars, 2L/64, block 32 (sliding window past 32)": (2, 64, 4, 32, {}),
    "250 greedy chars, 4L/128, block 256 (dynamic cache)": (4, 128, 4, 256, {}),
    "250 greedy chars, 4L/128, block 256, static cache": (4, 128, 4, 256, {"cache_implementation": "static"}),
    "250 greedy chars, 2L/64, block 32, no cache": (2, 64, 4, 32, {"use_cache": False}),
}


def old_engine_package(rev: str):
    """The engine module of `rev`: its whole `tinygpt` package, imported as `tinygpt_rev` (an empty __init__, so
    it does not register a second tinygpt with transformers' Auto classes)."""
    folder = Path(tempfile.mkdtemp(prefix="tinygpt-before-engine-"))
    archive = subprocess.run(["git", "archive", rev, "tinygpt"], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "tinygpt").rename(folder / "tinygpt_rev")
    (folder / "tinygpt_rev" / "__init__.py").write_text("")
    sys.path.insert(0, str(folder))
    return importlib.import_module("tinygpt_rev.engine"), importlib.import_module("tinygpt_rev.settings")


def old_package(rev: str):
    """The model class of `rev`, imported from a temporary package `tinygpt_before`."""
    folder = Path(tempfile.mkdtemp(prefix="tinygpt-before-")) / "tinygpt_before"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in ("configuration_tinygpt.py", "modeling_tinygpt.py"):
        code = subprocess.run(["git", "show", f"{rev}:tinygpt/{name}"], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout
        (folder / name).write_text(code)
    sys.path.insert(0, str(folder.parent))
    config = importlib.import_module("tinygpt_before.configuration_tinygpt").TinyGPTConfig
    return config, importlib.import_module("tinygpt_before.modeling_tinygpt").TinyGPTForCausalLM


def pair(old, n_layer, n_embd, n_head, block_size, vocab=65):
    """The same weights in the "before" and "after" model."""
    dims = dict(vocab_size=vocab, n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size)
    torch.manual_seed(0)
    after = TinyGPTForCausalLM(TinyGPTConfig(**dims))
    before = old[1](old[0](**dims))
    before.load_state_dict(after.state_dict())
    return before, after


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCK["cpu"]


def timed(fn) -> float:
    start = clock()
    fn()
    return clock() - start


def compare(cases: dict, rounds: int) -> dict:
    """cases: name -> (before_fn, after_fn). Returns name -> (before median s, after median s, ratio median)."""
    results = {}
    for name, (before, after) in cases.items():
        before(), after()  # warm up
        b, a = [], []
        for r in range(rounds):
            if r % 2:
                a.append(timed(after)), b.append(timed(before))
            else:
                b.append(timed(before)), a.append(timed(after))
        ratio = statistics.median(y / x for x, y in zip(b, a))
        results[name] = (statistics.median(b), statistics.median(a), ratio)
        print(f"{name:70} before {1e3 * results[name][0]:9.2f} ms  after {1e3 * results[name][1]:9.2f} ms  "
              f"after/before {ratio:.3f}", flush=True)
    return results


def train_case(model, batch_size, block_size, steps=10, vocab=65):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(0, vocab, (batch_size, block_size), generator=g),
                torch.randint(0, vocab, (batch_size, block_size), generator=g)) for _ in range(4)]

    def run():
        for i in range(steps):
            x, y = batches[i % len(batches)]
            loss = model(x, shift_labels=y).loss  # what train.py's engine calls
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return run


def decode_case(model, kwargs, new=250):
    model.eval()
    prompt = torch.zeros((1, 1), dtype=torch.long)
    out = {}

    @torch.no_grad()
    def run():
        out["text"] = model.generate(prompt, max_new_tokens=new, do_sample=False, **kwargs)[0].tolist()
    return run, out


def engine_cases(rev: str) -> tuple[dict, list]:
    """Before/after cases of the engine (see the module docstring) and the trainer pairs whose weights must agree."""
    from tinygpt.engine import Trainer
    from tinygpt.settings import TrainingSettings

    old_engine, old_settings = old_engine_package(rev)
    text = (REPO / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    cases, pairs = {}, []

    def trainers(preset):
        out_dir = Path(tempfile.mkdtemp(prefix="tinygpt-before-after-"))  # never written: no step saves
        before = old_engine.Trainer(old_settings.TrainingSettings.from_preset(preset, threads=0), text=text,
                                    out_dir=out_dir / "before")
        after = Trainer(TrainingSettings.from_preset(preset, threads=0), text=text, out_dir=out_dir / "after")
        pairs.append((preset, before, after))
        return before, after

    def steps(trainer, n=10):
        counter = {"step": 0}

        def run():
            for _ in range(n):
                trainer.train_step(counter["step"])
                counter["step"] += 1
        return run

    for preset, label in (("cpu", "the Train tab's step: engine train_step, --preset cpu (batch 32, clip 1)"),
                          ("seed", "engine train_step, --preset seed (batch 16)")):
        before, after = trainers(preset)
        cases[label] = (steps(before), steps(after))
    before, after = pairs[0][1:]
    cases["evaluation: estimate_loss, --preset cpu (2 x 10 batches of 128)"] = (before.estimate_loss,
                                                                                 after.estimate_loss)
    cases["evaluation: the 300-character sample"] = (before.sample, after.sample)
    return cases, pairs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", default="main", help="the 'before' revision (default: main)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds per case (default 7)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared machine)")
    p.add_argument("--clock", choices=CLOCK, default="cpu",
                   help="cpu: this process's CPU time (default; with 1 thread, what other processes do costs it least) "
                        "or wall")
    p.add_argument("--engine", action="store_true", help="also the engine's train step and an evaluation's parts "
                   "(imports the whole package of --rev)")
    p.add_argument("--engine-only", action="store_true", help="only the --engine cases")
    args = p.parse_args(argv)
    args.engine = args.engine or args.engine_only
    global clock
    clock = CLOCK[args.clock]
    torch.set_num_threads(args.threads)
    old = old_package(args.rev)
    print(f"before: {args.rev}, after: working tree; torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.rounds} rounds, {args.clock} clock")
    cases = {}
    for name, (n_layer, n_embd, n_head, block, batch) in TRAIN.items() if not args.engine_only else ():
        before, after = pair(old, n_layer, n_embd, n_head, block)
        cases[name] = (train_case(before, batch, block), train_case(after, batch, block))
    results = compare(cases, args.rounds)
    if args.engine:
        cases, pairs = engine_cases(args.rev)
        results.update(compare(cases, args.rounds))
        for preset, before, after in pairs:
            b, a = before.model.state_dict(), after.model.state_dict()
            if before.step != after.step or not all(torch.equal(b[k], a[k]) for k in a):
                print(f"DIFFERENT WEIGHTS after the same steps: --preset {preset}")
                return 1
        print("engine: the same weights, bit for bit, after the same steps (both presets)")
    cases, texts = {}, []
    for name, (n_layer, n_embd, n_head, block, kwargs) in DECODE.items() if not args.engine_only else ():
        before, after = pair(old, n_layer, n_embd, n_head, block)
        (b, b_out), (a, a_out) = decode_case(before, kwargs), decode_case(after, kwargs)
        cases[name] = (b, a)
        texts.append((name, b_out, a_out))
    results.update(compare(cases, args.rounds))
    for name, b_out, a_out in texts:
        if b_out["text"] != a_out["text"]:
            print(f"DIFFERENT TEXT: {name}")
            return 1
    print("\n| | before | after | after / before |\n|---|---|---|---|")
    for name, (b, a, ratio) in results.items():
        print(f"| {name} | {1e3 * b:.1f} ms | {1e3 * a:.1f} ms | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
