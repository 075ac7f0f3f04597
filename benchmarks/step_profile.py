"""Where one training step goes: the engine's train step split into its phases, against its matrix products alone.

    python benchmarks/step_profile.py                      # --preset cpu at the series' size (the Train tab's step)
    python benchmarks/step_profile.py --preset seed        # the seed's hyper-parameters (batch 16, no clipping)
    python benchmarks/step_profile.py --rounds 15 --threads 1 --clock cpu

It builds the engine's `Trainer` on tiny Shakespeare and times, in interleaved rounds (median of the rounds):

* the step as the engine runs it (`Trainer.train_step`), and the same step taken apart: drawing the batch, the
  forward (the model's own, loss included), backward, gradient clipping, the AdamW step, zero_grad;
* the floor: the step's matrix products alone (every Linear's forward, input-gradient and weight-gradient product at
  the step's shapes, on preallocated tensors), and the attention kernel alone (forward + backward per layer);
* the fixed cost: the same step at batch 1, where almost nothing is arithmetic.

What is left between the floor and the step is the non-matmul work: norms, softmax, ReLU, the residual adds, the
optimizer, autograd's bookkeeping and the Python around tiny tensors. The numbers are this process's CPU time by
default (`--clock cpu`), so other programs on a shared machine cost them little; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tinygpt.data import get_batch  # noqa: E402
from tinygpt.engine import Trainer  # noqa: E402
from tinygpt.settings import TrainingSettings  # noqa: E402

CLOCK = {"cpu": time.thread_time, "wall": time.perf_counter}


def build(preset: str, batch_size: int | None = None) -> Trainer:
    overrides = {"threads": 0} | ({"batch_size": batch_size} if batch_size else {})
    settings = TrainingSettings.from_preset(preset, **overrides)
    text = (REPO / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    trainer = Trainer(settings, text=text, out_dir=Path(tempfile.mkdtemp(prefix="tinygpt-step-")) / "run")
    for step in range(5):  # warm: the allocator, the optimizer's state
        trainer.train_step(step)
    return trainer


def phases(trainer: Trainer, clock, steps: int) -> dict[str, float]:
    """Seconds per step of each phase of the engine's step (its plain path: one process, no fp16 loss scaling)."""
    s, optimizer = trainer.settings, trainer.optimizer.optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    total = dict.fromkeys(("batch", "forward", "backward", "clip", "optimizer", "zero_grad"), 0.0)
    for step in range(steps):
        t0 = clock()
        x, y = get_batch(trainer.train_data, s.block_size, s.batch_size, trainer.sampler, trainer.device)
        t1 = clock()
        loss = trainer.model(x, shift_labels=y).loss
        t2 = clock()
        loss.backward()
        t3 = clock()
        if s.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, s.grad_clip, foreach=True)
        t4 = clock()
        optimizer.step()
        t5 = clock()
        optimizer.zero_grad(set_to_none=True)
        t6 = clock()
        for name, seconds in zip(total, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            total[name] += seconds
    return {name: seconds / steps for name, seconds in total.items()}


def matmul_floor(trainer: Trainer):
    """The step's matrix products on preallocated tensors: per Linear, y = x W^T, dx = dy W, dW = dy^T x."""
    s, model = trainer.settings, trainer.model
    n = s.batch_size * s.block_size
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    tensors = [(torch.randn(n, i), torch.randn(o, i), torch.randn(n, o)) for i, o in shapes]
    flops = sum(6 * n * i * o for i, o in shapes)

    def run():
        for x, w, dy in tensors:
            torch.mm(x, w.t())
            torch.mm(dy, w)
            torch.mm(dy.t(), x)
    return run, flops


def attention_alone(trainer: Trainer):
    """sdpa's causal kernel, forward and backward, at the step's shapes, once per layer."""
    s = trainer.settings
    shape = (s.batch_size, s.n_head, s.block_size, s.n_embd // s.n_head)
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    grad = torch.randn(shape)

    def run():
        for _ in range(s.n_layer):
            F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=s.n_embd ** -0.5).backward(grad)
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu", choices=("cpu", "seed"))
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--steps", type=int, default=20, help="steps per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clock", choices=CLOCK, default="cpu", help="cpu: this thread's CPU time (default), or wall")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = CLOCK[args.clock]
    trainer, tiny = build(args.preset), build(args.preset, batch_size=1)
    s = trainer.settings
    floor, flops = matmul_floor(trainer)
    attention = attention_alone(trainer)
    counter = {"step": 100}

    def engine_step(t):
        def run():
            for _ in range(args.steps):
                t.train_step(counter["step"])
                counter["step"] += 1
        return run

    cases = {"engine train_step": engine_step(trainer), "engine train_step, batch 1": engine_step(tiny),
             "matmuls alone": lambda: [floor() for _ in range(args.steps)],
             "attention alone (fwd+bwd, every layer)": lambda: [attention() for _ in range(args.steps)]}
    times = {name: [] for name in cases}
    parts = []
    for _ in range(args.rounds):
        for name, run in cases.items():
            start = clock()
            run()
            times[name].append((clock() - start) / args.steps)
        parts.append(phases(trainer, clock, args.steps))
    ms = {name: 1e3 * statistics.median(v) for name, v in times.items()}
    step = ms["engine train_step"]
    load = " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    print(f"--preset {args.preset}: {s.n_layer} layers, {s.n_embd} wide, {s.n_head} heads, block {s.block_size}, "
          f"batch {s.batch_size}; torch {torch.__version__}, {args.threads} thread(s), {args.clock} clock, "
          f"{args.rounds} rounds x {args.steps} steps, load average {load}")
    print(f"{'engine train_step':48s} {step:7.2f} ms/step")
    for name in ("batch", "forward", "backward", "clip", "optimizer", "zero_grad"):
        value = 1e3 * statistics.median(part[name] for part in parts)
        print(f"  {name:46s} {value:7.2f} ms   {100 * value / step:5.1f} %")
    print(f"{'matmuls alone (the floor)':48s} {ms['matmuls alone']:7.2f} ms   {100 * ms['matmuls alone'] / step:5.1f} %"
          f"   ({flops / 1e9:.2f} GFLOP: {flops / ms['matmuls alone'] / 1e6:.0f} GFLOP/s)")
    attn = ms["attention alone (fwd+bwd, every layer)"]
    print(f"{'attention kernel alone (fwd+bwd, every layer)':48s} {attn:7.2f} ms   {100 * attn / step:5.1f} %")
    rest = step - ms["matmuls alone"] - attn
    print(f"{'the rest (norms, ReLU, softmax, AdamW, autograd)':48s} {rest:7.2f} ms   {100 * rest / step:5.1f} %")
    print(f"{'engine train_step at batch 1 (fixed cost)':48s} {ms['engine train_step, batch 1']:7.2f} ms   "
          f"{100 * ms['engine train_step, batch 1'] / step:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
