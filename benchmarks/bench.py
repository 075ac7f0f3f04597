"""tinygpt against the blog series' code and HF GPT-2 at the same size, measured side by side in one process.

    python benchmarks/bench.py                 # the full run (a few minutes on 2 cores)
    python benchmarks/bench.py --quick         # CI-sized: fewer rounds, no subprocess metrics (well under a minute)
    python benchmarks/bench.py --quick --train --app   # ... plus train.py to val <= 1.88 and the demo's memory

Every comparison runs its cases interleaved (A, B, C, A, B, C, ...) in the same process, so a busy machine slows
them alike: absolute numbers move with the load, the ratios hold. Each cell is the median over rounds, with the
best round beside it; a ratio is the median over rounds of the per-round ratio (the paired cases of one round
ran seconds apart).

The cases (see benchmarks/README.md for what each row measures):

1. train step: forward + backward + AdamW step + zero_grad on the same pre-drawn batches, for the seed's `GPT`
   (tests/seed_gpt.py) + `torch.optim.AdamW` defaults, `GPT2LMHeadModel` + AdamW defaults, and tinygpt as
   train.py steps it (its optimizer, `model(x, shift_labels=y)`): with its default settings (the seed's) and with
   `--preset cpu`'s, which add gradient clipping;
2. generation: new characters from a 1-character prompt, greedy and sampled, through each model's own loop
   (`generate()` for the HF models, the seed's crop-and-rerun loop for the seed);
3. sliding window: greedy characters past block_size from a full-block prompt; the texts must be equal;
4. `python train.py --preset cpu`: wall time (process start-up included) to val <= 1.88, val loss in 60 s;
5. peak RSS of that training process and of `python app.py` before and after concurrent /generate requests;
6. with `--device cuda`: tokens/s and MFU (`--peak-tflops`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the seed's classes (tests/seed_gpt.py) and the app server helper

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import seed_gpt  # noqa: E402

DATA = REPO / "data" / "tinyshakespeare.txt"
TARGET_VAL = 1.88  # the goal: val <= 1.88 ...
TARGET_SECONDS = 60.0  # ... and the val loss reached in this much wall time


@dataclass(frozen=True)
class Dims:
    """One model size: the seed's hyper-parameter names."""

    n_layer: int
    n_embd: int
    n_head: int
    block_size: int
    batch_size: int = 1

    def label(self) -> str:
        batch = f", batch {self.batch_size}" if self.batch_size > 1 else ""
        return f"{self.n_layer}L/{self.n_embd}/{self.n_head}h, block {self.block_size}{batch}"


# The sizes the issue names. Training: the seed's run, the Train tab's (the cpu preset's batch of 32) and nanoGPT's
# CPU example; generation: both widths.
TRAIN_SIZES = {"the seed's run": Dims(2, 64, 4, 32, 16), "the Train tab's step": Dims(2, 64, 4, 32, 32),
               "nanoGPT's CPU example": Dims(4, 128, 4, 64, 12)}
GEN_SIZES = [Dims(2, 64, 4, 32), Dims(4, 128, 4, 256)]


@dataclass(frozen=True)
class Plan:
    """How much of everything to run: rounds are the interleaved repetitions; the rest are sizes of one round."""

    train_rounds: int
    train_steps: int  # optimizer steps timed per round
    gen_rounds: int
    new_chars: int  # characters generated from a 1-character prompt
    slide_rounds: int
    slide_chars: int  # characters generated past block_size, from a full-block prompt
    warmup_steps: int = 3


PLANS = {
    "full": Plan(train_rounds=7, train_steps=20, gen_rounds=5, new_chars=250, slide_rounds=3, slide_chars=1000),
    "quick": Plan(train_rounds=3, train_steps=10, gen_rounds=2, new_chars=250, slide_rounds=3, slide_chars=80),
    # For the test suite: the same code paths with tiny counts; the numbers mean nothing.
    "smoke": Plan(train_rounds=1, train_steps=2, gen_rounds=1, new_chars=20, slide_rounds=1, slide_chars=40,
                  warmup_steps=1),
}


@dataclass
class Row:
    """One case of a comparison: per-round seconds for `units` units of work (steps or characters)."""

    name: str
    seconds: list[float]
    units: int
    params: int = 0
    tokens_per_unit: int = 1  # characters processed per unit (B*T per train step, 1 per generated character)
    ratios: dict[str, float | None] = field(default_factory=dict)

    def per_unit(self) -> list[float]:
        return [s / self.units for s in self.seconds]


@dataclass
class Table:
    title: str
    unit: str  # "ms/step" (lower is better) or "char/s" (higher is better)
    groups: list[tuple[str, list[Row]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ measuring


class Timer:
    """Times one call; waits for the accelerator, so queued GPU work is counted where it was issued.

    clock "wall": time.perf_counter, what a user waits. clock "cpu": time.process_time, the CPU time of every
    thread of this process: on a shared machine it leaves out the time other programs had the cores, so with
    --threads 1 it measures the work itself (with more threads it also counts threads spinning at barriers).
    """

    def __init__(self, device: torch.device, clock: str = "wall"):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.clock = time.perf_counter if clock == "wall" else time.process_time

    def __call__(self, fn):
        self.sync()
        start = self.clock()
        result = fn()
        self.sync()
        return self.clock() - start, result


def interleaved(cases: dict, rounds: int, timer: Timer, warmup=None) -> tuple[dict[str, list[float]], dict]:
    """Run every case once to warm up (`warmup[name]` if given), then `rounds` rounds of A, B, C, ... in order.

    Returns the seconds of each case per round and the last result of each case (for correctness checks).
    """
    for name, fn in cases.items():
        (warmup or {}).get(name, fn)()
    seconds = {name: [] for name in cases}
    last = {}
    for _ in range(rounds):
        for name, fn in cases.items():
            elapsed, last[name] = timer(fn)
            seconds[name].append(elapsed)
    return seconds, last


def paired_ratio(baseline: list[float], case: list[float]) -> float:
    """How many times faster `case` is than `baseline`: the median of the per-round time ratios."""
    return statistics.median(b / c for b, c in zip(baseline, case))


def set_ratios(rows: dict[str, Row], baselines: dict[str, str | None]) -> None:
    """Fill each row's ratio against each named baseline row (None = not comparable, shown as n/a)."""
    for row in rows.values():
        for label, base in baselines.items():
            row.ratios[label] = paired_ratio(rows[base].per_unit(), row.per_unit()) if base in rows else None


# ------------------------------------------------------------------------------------------------ models


def corpus() -> tuple[str, list[str]]:
    text = DATA.read_text(encoding="utf-8")
    return text, sorted(set(text))  # the seed's mapping: ids are indices of the sorted characters


def build_seed(dims: Dims, vocab: int, device: torch.device, seed: int = 0):
    """The seed's GPT. Its code reads module globals (`block_size` in generate, `device` in forward) at call
    time, so every section calls this (or `use_seed_globals`) before running the seed's code."""
    torch.manual_seed(seed)
    return seed_gpt.build_seed_gpt(vocab, dims.n_embd, dims.n_head, dims.n_layer, dims.block_size, 0.0,
                                   str(device)).to(device)


def use_seed_globals(dims: Dims, device: torch.device) -> None:
    seed_gpt.block_size, seed_gpt.device = dims.block_size, str(device)


def tinygpt_from_seed(seed_model):
    """A TinyGPTForCausalLM holding exactly the seed model's weights (tinygpt convert-seed's code)."""
    from tinygpt import TinyGPTForCausalLM
    from tinygpt.convert import infer_config, seed_to_tinygpt_state_dict

    state = {k: v.detach().cpu() for k, v in seed_model.state_dict().items()}
    config = infer_config(state)
    model = TinyGPTForCausalLM(config)
    model.load_state_dict(seed_to_tinygpt_state_dict(state, config))
    return model.to(next(seed_model.parameters()).device)


def build_gpt2(dims: Dims, vocab: int, n_positions: int, device: torch.device, seed: int = 0):
    """GPT2LMHeadModel at the same width/depth/heads; dropout off like the seed's; no special tokens."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab, n_positions=n_positions, n_embd=dims.n_embd, n_layer=dims.n_layer, n_head=dims.n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    return GPT2LMHeadModel(config).to(device)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------ 1. train step


def train_steps(dims: Dims, batches, plan: Plan, device, timer, autocast, dtype: str = "fp32") -> list[Row]:
    """ms per optimizer step, interleaved: the seed's loop and GPT-2's on the same pre-drawn batches, and the
    engine's real train step (it draws its own batch) with its default settings (the seed's hyper-parameters)
    and with `--preset cpu`'s (which also clips)."""
    from tinygpt.engine import Trainer
    from tinygpt.settings import TrainingSettings

    vocab = 65
    seed = build_seed(dims, vocab, device).train()
    gpt2 = build_gpt2(dims, vocab, dims.block_size, device).train()
    seed_opt = torch.optim.AdamW(seed.parameters(), lr=1e-3)  # the seed's optimizer (and AdamW's defaults)
    gpt2_opt = torch.optim.AdamW(gpt2.parameters(), lr=1e-3)
    position = {"i": 0}

    def batch():
        position["i"] = (position["i"] + 1) % len(batches)
        return batches[position["i"]]

    def seed_step():  # the final post's loop body
        xb, yb = batch()
        with autocast():
            _, loss = seed(xb, yb)
        seed_opt.zero_grad(set_to_none=True)
        loss.backward()
        seed_opt.step()
        return loss

    def gpt2_step():  # the same loss as the seed's (every position against its shifted target)
        xb, yb = batch()
        with autocast():
            loss = gpt2(input_ids=xb, labels=yb, shift_labels=yb).loss
        loss.backward()
        gpt2_opt.step()
        gpt2_opt.zero_grad(set_to_none=True)
        return loss

    def tinygpt_step(preset):
        """The engine's own Trainer.train_step (what train.py runs: its batch sampling, Accelerate's wrappers and
        the schedule included) with `preset`'s settings at these dims, from the seed's starting weights."""
        settings = TrainingSettings.from_preset(preset, n_layer=dims.n_layer, n_embd=dims.n_embd, n_head=dims.n_head,
                                                block_size=dims.block_size, batch_size=dims.batch_size,
                                                device=device.type, dtype=dtype, threads=0)  # threads: --threads
        out_dir = Path(tempfile.mkdtemp(prefix="tinygpt-bench-"))
        trainer = Trainer(settings, text=DATA.read_text(encoding="utf-8"), out_dir=out_dir / "run")
        shutil.rmtree(out_dir)  # it never saves here
        trainer.model.load_state_dict(tinygpt_from_seed(seed).state_dict())  # the losses can be compared
        index = {"i": 0}

        def step():
            index["i"] += 1
            return trainer.train_step(index["i"] - 1)

        fused = "fused " if trainer.optimizer.param_groups[0].get("fused") else ""
        clip = f" + clip {settings.grad_clip:g}" if settings.grad_clip else ""
        return trainer.model, step, f"{fused}AdamW{clip}"

    tiny, tiny_step, tiny_opt = tinygpt_step("seed")
    tiny_cpu, tiny_cpu_step, tiny_cpu_opt = tinygpt_step("cpu")
    cases = {  # name: (model, one step)
        "seed GPT + AdamW()": (seed, seed_step),
        "GPT2LMHeadModel + AdamW()": (gpt2, gpt2_step),
        f"tinygpt, train.py step ({tiny_opt})": (tiny, tiny_step),
        f"tinygpt, --preset cpu step ({tiny_cpu_opt})": (tiny_cpu, tiny_cpu_step),
    }

    def repeat(step, n):
        return lambda: [step() for _ in range(n)][-1]

    seconds, _ = interleaved(
        {name: repeat(step, plan.train_steps) for name, (_, step) in cases.items()}, plan.train_rounds, timer,
        {name: repeat(step, plan.warmup_steps) for name, (_, step) in cases.items()},
    )
    rows = {
        name: Row(name, s, plan.train_steps, n_params(cases[name][0]), dims.batch_size * dims.block_size)
        for name, s in seconds.items()
    }
    set_ratios(rows, {"seed": "seed GPT + AdamW()", "GPT2": "GPT2LMHeadModel + AdamW()"})
    return list(rows.values())


def make_batches(data: torch.Tensor, dims: Dims, device, count: int = 8, seed: int = 0):
    """`count` random (x, y) batches of the training text, the same for every model."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        ix = torch.randint(len(data) - dims.block_size - 1, (dims.batch_size,), generator=g)
        x = torch.stack([data[i : i + dims.block_size] for i in ix])
        y = torch.stack([data[i + 1 : i + dims.block_size + 1] for i in ix])
        out.append((x.to(device), y.to(device)))
    return out


# ------------------------------------------------------------------------------------------------ 2-3. generation


def seed_greedy(model, idx, max_new_tokens, block_size):
    """The seed's generate loop with argmax in place of multinomial: crop to the window, re-run it all."""
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -block_size:])
        idx = torch.cat((idx, logits[:, -1, :].argmax(dim=-1, keepdim=True)), dim=1)
    return idx


def hf_generate(model, prompt, n, greedy, use_cache=True):
    from tinygpt.generate import generation_kwargs

    kwargs = generation_kwargs(n, 0.0 if greedy else 1.0, 0, 1.0)  # sampled: full softmax, as the seed's
    return model.generate(prompt, attention_mask=torch.ones_like(prompt), use_cache=use_cache, **kwargs)


def generation(dims: Dims, vocab: int, prompt_ids: torch.Tensor, n: int, rounds: int, device, timer, autocast,
               with_gpt2: bool, sampled: bool = True):
    """char/s of each model's own loop from `prompt_ids`, interleaved; returns rows and the greedy texts."""
    seed = build_seed(dims, vocab, device).eval()
    tiny = tinygpt_from_seed(seed).eval()
    use_seed_globals(dims, device)
    prompt = prompt_ids.to(device)
    block = dims.block_size
    modes = ("greedy", "sampled") if sampled else ("greedy",)
    cases, warm = {}, {}

    def add(name, fn):
        cases[name] = lambda: fn(n)
        warm[name] = lambda: fn(min(n, 8))

    gpt2 = None
    if with_gpt2:  # GPT-2 cannot generate past n_positions: give it room for the whole text
        gpt2 = build_gpt2(dims, vocab, max(block, prompt.shape[1] + n), device).eval()
    for mode in modes:
        greedy = mode == "greedy"
        if greedy:
            add(f"seed loop, {mode}", lambda k: seed_greedy(seed, prompt, k, block))
        else:
            add(f"seed loop, {mode}", lambda k: seed.generate(prompt, k))
        add(f"tinygpt cache, {mode}", lambda k, g=greedy: hf_generate(tiny, prompt, k, g))
        add(f"tinygpt no cache, {mode}", lambda k, g=greedy: hf_generate(tiny, prompt, k, g, use_cache=False))
        if gpt2 is not None:
            add(f"GPT2LMHeadModel cache, {mode}", lambda k, g=greedy: hf_generate(gpt2, prompt, k, g))

    with torch.inference_mode(), autocast():
        seconds, last = interleaved(cases, rounds, timer, warm)
    params = {"seed": n_params(seed), "tinygpt": n_params(tiny), "GPT2": n_params(gpt2) if gpt2 is not None else 0}
    rows = {}
    for name, s in seconds.items():
        owner = "seed" if name.startswith("seed") else "tinygpt" if name.startswith("tinygpt") else "GPT2"
        rows[name] = Row(name, s, n, params[owner])
    for mode in modes:
        mine = {k: r for k, r in rows.items() if k.endswith(mode)}
        set_ratios(mine, {"seed": f"seed loop, {mode}", "GPT2": f"GPT2LMHeadModel cache, {mode}"})
    texts = {name: out[0, prompt.shape[1]:].tolist() for name, out in last.items() if name.endswith("greedy")}
    return list(rows.values()), texts


def check_same_text(texts: dict[str, list[int]], chars: list[str], where: str, strict: bool = True) -> str:
    """tinygpt's greedy characters must be the seed's exactly; returns the line that says so (or raises).

    Not `strict` (bf16 autocast): the two compute in a different order, so rounding may flip a close argmax;
    a difference is reported, not raised.
    """
    reference = texts["seed loop, greedy"]
    for name, ids in texts.items():
        if name.startswith("tinygpt") and ids != reference:
            first = next((i for i, (a, b) in enumerate(zip(ids, reference)) if a != b), min(len(ids), len(reference)))
            message = (
                f"{where}: {name} differs from the seed's greedy text at character {first}: "
                f"{''.join(chars[i] for i in ids[:first + 20])!r} vs {''.join(chars[i] for i in reference[:first + 20])!r}"
            )
            if strict:
                raise AssertionError(message)
            return message + " (bf16 rounding; exactness is checked in fp32)"
    sample = "".join(chars[i] for i in reference[:40])
    return f"{where}: same text (seed loop = tinygpt cache = tinygpt no cache, {len(reference)} chars: {sample!r}...)"


# ------------------------------------------------------------------------------------------------ 3b. decoding paths


def decode_matmuls(model, n: int, device) -> float:
    """Seconds for only the matrix products of `n` cached decode steps (the floor a decode step can approach):
    per block qkv, the attention scores and weighted sum over the cached keys, proj and the feed-forward's two
    Linears, then the head. Everything else in a step (layer norms, softmax, sampling, Python) is left out."""
    cfg = model.config
    hs = cfg.n_embd // cfg.n_head
    x = torch.randn(1, 1, cfg.n_embd, device=device)
    keys = torch.randn(1, cfg.n_head, n + 1, hs, device=device)
    hidden = torch.randn(1, 1, 4 * cfg.n_embd, device=device)
    start = time.perf_counter()
    for step in range(1, n + 1):
        for block in model.blocks:
            F.linear(x, block.sa.qkv.weight)
            q = x.view(1, 1, cfg.n_head, hs).transpose(1, 2)
            weights = q @ keys[:, :, :step].transpose(-2, -1)  # (1, nh, 1, step)
            weights @ keys[:, :, :step]
            F.linear(x, block.sa.proj.weight, block.sa.proj.bias)
            F.linear(x, block.ffwd.net[0].weight, block.ffwd.net[0].bias)
            F.linear(hidden, block.ffwd.net[2].weight, block.ffwd.net[2].bias)
        F.linear(x, model.head.weight, model.head.bias)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def decoding(dims: Dims, vocab: int, n: int, rounds: int, device, timer, autocast, compile_: bool):
    """char/s of tinygpt's decoding paths and GPT2LMHeadModel, sampling `n` characters from a 1-character prompt.

    Rows: the default dynamic cache (eager), `cache_implementation="static"`, the static cache with the forward
    compiled (`torch.compile(model.forward, fullgraph=True)`, transformers' documented recipe), and GPT-2 with
    its own cache. Every tinygpt row draws from the same seeded RNG, so their texts must be equal. Returns the
    rows and notes (compile time, the matmul floor, same text).
    """
    from tinygpt.generate import generation_kwargs

    seed = build_seed(dims, vocab, device).eval()
    eager, compiled = tinygpt_from_seed(seed).eval(), tinygpt_from_seed(seed).eval()
    gpt2 = build_gpt2(dims, vocab, max(dims.block_size, 1 + n), device).eval()
    prompt = torch.zeros((1, 1), dtype=torch.long, device=device)
    sampled = generation_kwargs(n, 1.0, 0, 1.0)

    def run(model, **kwargs):
        torch.manual_seed(0)
        return model.generate(prompt, attention_mask=torch.ones_like(prompt), **sampled, **kwargs)

    cases = {
        "tinygpt dynamic cache (eager)": lambda: run(eager),
        "tinygpt static cache": lambda: run(eager, cache_implementation="static"),
    }
    notes = []
    if compile_:
        compiled.forward = torch.compile(compiled.forward, fullgraph=True)
        cases["tinygpt static cache + torch.compile"] = lambda: run(compiled, cache_implementation="static")
    cases["GPT2LMHeadModel cache"] = lambda: run(gpt2)
    with torch.inference_mode(), autocast():
        first = {}
        if compile_:  # the first call compiles (prefill and decode graphs): wall time, as inductor compiles in
            first_s, _ = Timer(device, "wall")(cases["tinygpt static cache + torch.compile"])  # worker processes
            first["compile"] = first_s
        seconds, last = interleaved(cases, rounds, timer)
        floor = min(decode_matmuls(eager, n, device) for _ in range(3))
    rows = {name: Row(name, s, n, n_params(gpt2 if name.startswith("GPT2") else eager)) for name, s in seconds.items()}
    set_ratios(rows, {"seed": None, "GPT2": "GPT2LMHeadModel cache"})
    if compile_:
        steady = statistics.median(seconds["tinygpt static cache + torch.compile"])
        notes.append(f"torch.compile: the first generate() took {first['compile']:.1f} s wall (it compiles the prefill and "
                     f"decode graphs; less when inductor's on-disk cache already holds them), each later one "
                     f"{steady:.2f} s ({1000 * steady / n:.2f} ms/char)")
    for name, row in rows.items():
        if name.startswith("tinygpt"):
            per_char = statistics.median(row.per_unit())
            notes.append(f"{name}: {1000 * per_char:.3f} ms/char; its matmuls alone {1000 * floor / n:.3f} ms/char "
                         f"= {100 * floor / n / per_char:.0f}% of the step")
    texts = {name: out[0].tolist() for name, out in last.items() if name.startswith("tinygpt")}
    same = len({tuple(t) for t in texts.values()}) == 1
    notes.append(f"same sampled text on every tinygpt row: {'yes' if same else 'NO: ' + ', '.join(texts)}")
    return list(rows.values()), notes, same


# ------------------------------------------------------------------------------------------------ 4-5. subprocesses


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a live process in MiB, from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def train_to_target(out_dir: Path, threads: int, device: str, timeout: float) -> dict:
    """`python train.py --preset cpu` on tiny Shakespeare: wall time to val <= TARGET_VAL and val at 60 s.

    Each "step N: train X, val Y" line is timestamped as it arrives, from the moment the process is started,
    so interpreter and import start-up are included. The run is stopped (SIGTERM: train.py saves and exits)
    once both numbers are known; its peak RSS is the largest VmHWM read while it runs (every 0.1 s).
    """
    cmd = [sys.executable, "train.py", "--preset", "cpu", "--data", str(DATA.relative_to(REPO)),
           "--out-dir", str(out_dir), "--device", device]
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    evals, log = [], []
    target = {}

    def read():
        for line in proc.stdout:
            now = time.perf_counter() - start
            log.append(line)
            if line.startswith("step ") and ", val " in line:
                step = int(line.split()[1].rstrip(":"))
                val = float(line.rsplit("val ", 1)[1].split()[0].rstrip(","))
                evals.append({"step": step, "val_loss": val, "wall_s": round(now, 2)})
                if val <= TARGET_VAL and not target:
                    target.update(evals[-1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stopped_by, stop_time, peak = None, None, 0.0
    while proc.poll() is None:
        # The kernel's high-water mark of this process. Not getrusage/wait4: a child's maxrss starts from its
        # parent's (this benchmark's, models and all) at fork.
        try:
            peak = max(peak, rss_mib(proc.pid)[1])
        except (OSError, KeyError):
            pass  # exiting
        now = time.perf_counter() - start
        if stopped_by is None and (target and now > TARGET_SECONDS or now > timeout):
            stopped_by = "both numbers known" if target and now > TARGET_SECONDS else f"--train-timeout {timeout:g} s"
            stop_time = now
            proc.send_signal(signal.SIGTERM)  # train.py saves the current step and exits 0
        elif stop_time is not None and now > stop_time + 60:
            proc.kill()
        time.sleep(0.1)
    reader.join(timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"train.py exited with {proc.returncode}:\n{''.join(log[-20:])}")
    within = [e for e in evals if e["wall_s"] <= TARGET_SECONDS]
    state = json.loads((out_dir / "trainer_state.json").read_text())
    return {
        "command": " ".join(cmd),
        "seconds_to_target": target.get("wall_s"),
        "step_at_target": target.get("step"),
        "val_at_target": target.get("val_loss"),
        "val_at_60s": within[-1]["val_loss"] if within else None,
        "step_at_60s": within[-1]["step"] if within else None,
        "evals": evals,
        "train_py_elapsed": [{"step": e["step"], "elapsed_s": e["elapsed_s"]} for e in state["log_history"]],
        "peak_rss_mib": peak,
        "stopped_by": stopped_by or "finished",
    }


def demo_server_rss(model_dir: Path, log_path: Path, clients: int, new_chars: int) -> dict:
    """`python app.py --model DIR`: RSS idle (started, no request yet), then with `clients` requests at once."""
    from app_helpers import AppServer, app_env
    from gradio_client import Client

    with AppServer(["--model", str(model_dir)], log_path, env=app_env()) as server:
        time.sleep(1.0)  # let start-up work settle
        idle, _ = rss_mib(server.pid)
        client = Client(server.url, verbose=False)
        start = time.perf_counter()
        jobs = [client.submit("ROMEO:\n", new_chars, 0.8, 0, 1.0, seed, api_name="/generate") for seed in range(clients)]
        texts = [job.result(timeout=300) for job in jobs]
        wall = time.perf_counter() - start
        after, peak = rss_mib(server.pid)
    if not all(t.startswith("ROMEO:\n") and len(t) > len("ROMEO:\n") for t in texts):
        raise RuntimeError(f"unexpected /generate answers: {[t[:40] for t in texts]}")
    return {
        "model": str(model_dir), "clients": clients, "new_chars": new_chars, "idle_rss_mib": idle,
        "peak_rss_mib": peak, "rss_after_mib": after, "wall_s": wall,
        "chars_per_s_total": clients * new_chars / wall,
    }


def make_model_dir(path: Path, chars: list[str]) -> Path:
    """A random-weight model at the cpu preset's dims with tiny Shakespeare's vocabulary (memory does not care)."""
    from tinygpt import TinyGPTConfig, TinyGPTForCausalLM
    from tinygpt.settings import TrainingSettings
    from tinygpt.tokenization import tokenizer_from_characters

    d = Dims(*(TrainingSettings.PRESETS["cpu"][k] for k in ("n_layer", "n_embd", "n_head", "block_size")))
    torch.manual_seed(0)
    TinyGPTForCausalLM(TinyGPTConfig(vocab_size=len(chars), n_embd=d.n_embd, n_head=d.n_head, n_layer=d.n_layer,
                                     block_size=d.block_size)).save_pretrained(path)
    tokenizer_from_characters(chars).save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------------ report


def machine() -> dict:
    import transformers

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    info = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def print_table(table: Table, peak_tflops: float | None, show_tokens: bool) -> None:
    per_char = table.unit == "char/s"
    extra = ["tok/s"] if show_tokens else []
    extra += ["MFU"] if peak_tflops else []
    header = f"  {'':48s} {'median':>9s} {'best':>9s}  {'vs seed':>8s} {'vs GPT2':>8s}" + "".join(
        f" {h:>9s}" for h in extra
    )
    print(f"\n{table.title}  [{table.unit}; {'higher' if per_char else 'lower'} is better]")
    print(header)
    for group, rows in table.groups:
        print(f"  {group}")
        for row in rows:
            per_unit = row.per_unit()
            if per_char:
                median, best = 1 / statistics.median(per_unit), 1 / min(per_unit)
                cells = f"{median:9.0f} {best:9.0f}"
            else:
                median, best = 1000 * statistics.median(per_unit), 1000 * min(per_unit)
                cells = f"{median:9.2f} {best:9.2f}"
            line = f"    {row.name:46s} {cells}  {fmt_ratio(row.ratios.get('seed')):>8s} {fmt_ratio(row.ratios.get('GPT2')):>8s}"
            tokens = row.tokens_per_unit / statistics.median(per_unit)
            if show_tokens:
                line += f" {tokens:9.0f}"
            if peak_tflops:
                flops_per_token = (6 if not per_char else 2) * row.params  # forward+backward vs forward only
                line += f" {100 * flops_per_token * tokens / (peak_tflops * 1e12):8.2f}%"
            print(line)
    for note in table.notes:
        print(f"  {note}")


def table_json(table: Table) -> dict:
    out = {"title": table.title, "unit": table.unit, "notes": table.notes, "groups": []}
    for group, rows in table.groups:
        entries = []
        for row in rows:
            entry = asdict(row)
            per_unit = row.per_unit()
            entry["median_per_unit_s"], entry["min_per_unit_s"] = statistics.median(per_unit), min(per_unit)
            entries.append(entry)
        out["groups"].append({"group": group, "rows": entries})
    return out


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI-sized: fewer rounds; train.py and the demo only on request")
    size.add_argument("--smoke", action="store_true", help="tiny counts for the test suite (correctness only; numbers mean nothing)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the models run (default: cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the target laptop's cores); 0 = torch's default")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="bf16 = autocast for every model alike (default: fp32)")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="wall (default), or cpu = this process's CPU time, steadier on a shared machine with --threads 1")
    p.add_argument("--rounds", type=int, help="override the number of interleaved rounds of every comparison")
    p.add_argument("--train", action="store_true", help="with --quick/--smoke: also run train.py to val <= 1.88 (always in a full run)")
    p.add_argument("--no-train", action="store_true", help="skip the train.py run even in a full run")
    p.add_argument("--app", action="store_true", help="with --quick/--smoke: also measure the demo server's memory (always in a full run)")
    p.add_argument("--no-app", action="store_true", help="skip the demo server even in a full run")
    p.add_argument("--app-model", help="model folder for the demo server (default: the train.py run's, else "
                   "checkpoints/tinyshakespeare, else a random model at the cpu preset's dims)")
    p.add_argument("--clients", type=int, default=8, help="concurrent /generate requests to the demo server (default 8)")
    p.add_argument("--train-timeout", type=float, default=600, help="stop train.py after this many seconds (default 600)")
    p.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s at --dtype, for MFU (e.g. 989 for an H100 bf16)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile row of the decoding table")
    p.add_argument("--json", metavar="OUT", help="write every raw number to this file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    plan_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = PLANS[plan_name]
    if args.rounds:
        plan = Plan(**dict(asdict(plan), train_rounds=args.rounds, gen_rounds=args.rounds, slide_rounds=args.rounds))
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench.py: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    timer = Timer(device, args.clock)
    dtype = torch.bfloat16 if args.dtype == "bf16" else None

    def autocast():
        return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    run_train = not args.no_train and (plan_name == "full" or args.train)
    run_app = not args.no_app and (plan_name == "full" or args.app)
    info = machine()
    print(f"tinygpt benchmark ({plan_name}: {asdict(plan)})")
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_avg_1m']:.1f}; python {info['python']}, "
        f"torch {info['torch']}, transformers {info['transformers']}; device {args.device}"
        f"{' (' + info['gpu'] + ')' if args.device == 'cuda' else ''}, {info['threads']} threads, {args.dtype}"
    )
    clock = "wall-clock" if args.clock == "wall" else "process CPU time"
    print(f"{clock}, cases interleaved A,B,C,A,B,C...; median and best round; ratios = median of per-round ratios")
    results = {"machine": info, "plan": plan_name, "plan_counts": asdict(plan), "args": vars(args), "tables": []}
    text, chars = corpus()
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n_train = int(0.9 * len(data))
    show_tokens = args.device == "cuda" or bool(args.peak_tflops)

    # 1. train step
    table = Table("1. Train step: forward + backward + AdamW step + zero_grad", "ms/step")
    for what, dims in TRAIN_SIZES.items():
        batches = make_batches(data[:n_train], dims, device)
        table.groups.append((f"{dims.label()} ({what})",
                             train_steps(dims, batches, plan, device, timer, autocast, args.dtype)))
    table.notes.append(f"{plan.train_rounds} rounds x {plan.train_steps} steps; the same pre-drawn batches for the "
                       "seed and GPT-2; tinygpt's rows are the engine's Trainer.train_step, batch sampling included")
    print_table(table, args.peak_tflops, show_tokens)
    results["tables"].append(table_json(table))

    # 2. generation from a 1-character prompt
    table = Table(f"2. Generation: {plan.new_chars} new characters from a 1-character prompt", "char/s")
    same = []
    one_char = torch.zeros((1, 1), dtype=torch.long)  # the seed's `torch.zeros((1, 1))`: '\n'
    for dims in GEN_SIZES:
        rows, texts = generation(dims, len(chars), one_char, plan.new_chars, plan.gen_rounds, device, timer,
                                 autocast, with_gpt2=True)
        table.groups.append((dims.label(), rows))
        same.append(check_same_text(texts, chars, f"greedy, {dims.label()}", strict=dtype is None))
        if one_char.shape[1] + plan.new_chars > dims.block_size:
            table.notes.append(
                f"{dims.label()}: past character {dims.block_size} the seed and tinygpt slide their window; "
                f"GPT2LMHeadModel gets n_positions {one_char.shape[1] + plan.new_chars} and attends to everything"
            )
    table.notes += same
    print_table(table, args.peak_tflops, show_tokens)
    results["tables"].append(table_json(table))

    # 3. sliding window: everything past block_size
    table = Table(f"3. Sliding window: {plan.slide_chars} greedy characters past block_size (full-block prompt)", "char/s")
    for dims in GEN_SIZES:
        prompt = data[n_train : n_train + dims.block_size][None]  # a full window of the validation text
        rows, texts = generation(dims, len(chars), prompt, plan.slide_chars, plan.slide_rounds, device, timer,
                                 autocast, with_gpt2=False, sampled=False)
        table.groups.append((dims.label(), rows))
        table.notes.append(check_same_text(texts, chars, f"past block_size, {dims.label()}", strict=dtype is None))
    table.notes.append("GPT2LMHeadModel: n/a (no sliding window: it cannot generate past n_positions)")
    print_table(table, args.peak_tflops, show_tokens)
    results["tables"].append(table_json(table))

    # 3b. decoding paths: dynamic cache, static cache, static cache + torch.compile, GPT-2 (kept out of "tables")
    dims = GEN_SIZES[-1]
    compile_ = not args.no_compile and plan_name != "smoke"  # compiling takes longer than a whole smoke run
    table = Table(f"3b. Decoding paths: {plan.new_chars} sampled characters from a 1-character prompt", "char/s")
    rows, notes, _ = decoding(dims, len(chars), plan.new_chars, plan.gen_rounds, device, timer, autocast, compile_)
    table.groups.append((dims.label(), rows))
    table.notes += notes + ([] if compile_ else ["torch.compile row skipped (--smoke or --no-compile)"])
    print_table(table, args.peak_tflops, show_tokens)
    results["decoding"] = table_json(table)

    # 4-5. train.py to the target, peak RSS of training and of the demo server
    with tempfile.TemporaryDirectory(prefix="tinygpt-bench-") as tmp:
        tmp = Path(tmp)
        trained = None
        print(f"\n4. python train.py --preset cpu: wall time to val <= {TARGET_VAL}, val loss in {TARGET_SECONDS:g} s")
        if run_train:
            r = train_to_target(tmp / "train", args.threads, args.device, args.train_timeout)
            results["train"] = r
            trained = tmp / "train"
            to_target = (f"{r['seconds_to_target']:.1f} s (step {r['step_at_target']}, val {r['val_at_target']:.4f})"
                         if r["seconds_to_target"] is not None else f"not reached ({r['stopped_by']})")
            at_60 = (f"{r['val_at_60s']:.4f} (step {r['step_at_60s']})" if r["val_at_60s"] is not None else "no eval yet")
            print(f"  command: {r['command']}")
            print(f"  wall time to val <= {TARGET_VAL}: {to_target}")
            print(f"  val loss at {TARGET_SECONDS:g} s: {at_60}")
            print("  evals (wall s, process start-up included): "
                  + ", ".join(f"{e['step']}: {e['val_loss']:.3f} @ {e['wall_s']:.0f}" for e in r["evals"]))
        else:
            print("  skipped (--quick/--smoke without --train, or --no-train)")

        print(f"\n5. Peak RSS")
        if run_train:
            print(f"  train.py --preset cpu: {results['train']['peak_rss_mib']:.0f} MiB")
        if run_app:
            bundled = REPO / "checkpoints" / "tinyshakespeare"
            if args.app_model:
                model_dir, shown = Path(args.app_model), args.app_model
            elif trained is not None:
                model_dir, shown = trained, "<the train.py run's folder>"
            elif bundled.is_dir():
                model_dir, shown = bundled, "checkpoints/tinyshakespeare"
            else:
                model_dir, shown = make_model_dir(tmp / "model", chars), "<a random model at --preset cpu's dims>"
            r = demo_server_rss(model_dir, tmp / "app.log", args.clients, 20 if plan_name == "smoke" else 250)
            results["app"] = dict(r, model=shown)
            print(f"  app.py --model {shown}: idle {r['idle_rss_mib']:.0f} MiB, peak {r['peak_rss_mib']:.0f} MiB with "
                  f"{r['clients']} concurrent /generate requests of {r['new_chars']} chars "
                  f"({r['chars_per_s_total']:.0f} char/s in total)")
        if not run_train and not run_app:
            print("  skipped (needs --train and/or --app with --quick/--smoke)")

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nraw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
