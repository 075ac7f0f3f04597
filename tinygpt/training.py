"""Training: the seed's loop, made into a command a learner can point at their own text.

The loop is the final post's: sample a random batch of `block_size` windows from the first 90 % of the text,
`loss = model(x, y)`, backward, AdamW step; every `eval_interval` steps `estimate_loss()` averages `eval_iters`
batches of each split. Around it:

- settings come from built-in defaults (the seed's values) < a `--preset` < the resumed run's settings < the
  flags given on the command line, and the effective values are recorded in trainer_state.json and the card;
- every evaluation is followed by an atomic checkpoint of the output folder (`tinygpt.checkpoint`), so the
  folder always loads with `from_pretrained` and `--resume` continues bit for bit (RNG states included);
- Hugging Face Accelerate runs it on 1 to N processes (`accelerate launch` / `torchrun`): each process samples
  its own batches, gradients are averaged, only the main process writes the folder;
- SIGINT/SIGTERM save the current step and exit 0.

`python train.py` calls `main`; the functions below are what the tests import.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

from .checkpoint import (
    RESUME_FILES,
    STAGING_NAME,
    TRAINING_STATE_NAME,
    CheckpointError,
    capture_rng,
    is_disk_full,
    load_training_state,
    restore_rng,
    save_training_state,
    write_checkpoint,
)
from .configuration_tinygpt import TinyGPTConfig
from .data import check_split_lengths, encode_corpus, get_batch
from .device import DEVICE_CHOICES, resolve_device

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("data") / "tinyshakespeare.txt"
DEFAULT_OUT_DIR = "out"
SAMPLE_LENGTH = 300  # characters of generated text on the model card
DTYPES = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # --dtype -> Accelerate's mixed_precision
MODEL_DIMS = ("n_layer", "n_head", "n_embd", "block_size")
# Files of a trained folder; --overwrite removes them (config.json first) just before the new run's first save.
OUTPUT_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "configuration_tinygpt.py", "modeling_tinygpt.py",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "trainer_state.json", "loss.png",
    "README.md", *RESUME_FILES,
)

# The seed's hyper-parameters. Every training setting is here, so this dict is also the list of what is
# recorded in trainer_state.json["training_args"] and compared by --preset/--resume.
DEFAULTS = {
    "n_layer": 2,
    "n_head": 4,
    "n_embd": 64,
    "block_size": 32,
    "dropout": 0.0,
    "batch_size": 16,
    "max_iters": 3000,
    "learning_rate": 1e-3,
    "lr_schedule": "constant",
    "warmup_iters": 0,
    "lr_decay_iters": None,
    "min_lr": None,
    "weight_decay": 0.01,  # torch.optim.AdamW's default, which the seed uses
    "beta1": 0.9,
    "beta2": 0.999,
    "grad_clip": 0.0,
    "eval_interval": 300,
    "eval_iters": 200,
    "eval_batch_size": None,
    "seed": 1337,
    "device": "auto",
    "dtype": "fp32",
    "compile": False,
    "threads": 0,
}

PRESETS = {
    # The blog series' final post: exactly the values above, listed so `--preset seed` reads as the recipe.
    "seed": {
        "n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 32, "dropout": 0.0,
        "batch_size": 16, "learning_rate": 1e-3, "max_iters": 3000, "eval_interval": 300, "eval_iters": 200,
        "lr_schedule": "constant", "warmup_iters": 0, "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999,
        "grad_clip": 0.0,
    },
    # Validation loss per second on a 2-core laptop CPU: the seed's own model, trained harder. With well under a
    # minute of compute, steps are what is short, not capacity: wider, deeper or longer-context models (nanoGPT's
    # CPU recipe is 4 x 128 x 64) reach val 1.88 later. Twice the seed's batch at ten times its rate, warmed up,
    # cosine-decayed and clipped, passes 1.88 around step 1450 and ends near 1.77; evaluation is cheap (a few
    # large batches) and every 300 steps. One thread: at this size a second one gains nothing even on an idle
    # machine, and on a busy one (a browser, another job) OpenMP's barriers make every step up to 70x slower.
    "cpu": {
        "n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 32, "dropout": 0.0,
        "batch_size": 32, "learning_rate": 1e-2, "max_iters": 2400, "eval_interval": 300, "eval_iters": 10,
        "eval_batch_size": 128, "lr_schedule": "cosine", "warmup_iters": 50, "lr_decay_iters": 2400,
        "min_lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0, "threads": 1,
    },
}


class TrainingError(ValueError):
    """A setting or situation training cannot start from; the message says what to do."""


# --------------------------------------------------------------------------------------------------- arguments


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other error of train.py."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """Every flag defaults to "not given" (SUPPRESS), so explicit flags can be told apart from defaults."""
    p = _OneLineParser(
        prog=prog,
        description=(
            "Train a character-level GPT on any UTF-8 text. With no arguments: the blog series' settings on "
            "tiny Shakespeare. The output folder is a Hugging Face model folder (from_pretrained loads it) and "
            "is checkpointed atomically after every evaluation."
        ),
        epilog=(
            "Several processes: `torchrun --nproc-per-node N train.py ...` or `accelerate launch --num_processes N "
            "train.py ...`. Each process samples its own --batch-size sequences, so one step sees batch_size x N "
            "sequences; --max-iters, --eval-interval and the schedule count optimizer steps, whatever N is. "
            "Explicit flags override the preset, and on --resume the settings saved in the folder."
        ),
        argument_default=argparse.SUPPRESS,
    )
    d = DEFAULTS
    io = p.add_argument_group("data and output")
    io.add_argument("--data", metavar="FILE", help=f"UTF-8 text file to train on (default: {DEFAULT_DATA})")
    io.add_argument("--out-dir", metavar="DIR", help=f"output folder (default: {DEFAULT_OUT_DIR})")
    io.add_argument("--resume", action="store_true", help="continue the run saved in --out-dir, with its settings")
    io.add_argument("--overwrite", action="store_true", help="replace a model already in --out-dir")
    io.add_argument(
        "--preset", choices=sorted(PRESETS),
        help="seed: the blog series' hyper-parameters (the defaults). cpu: best val loss per second on a laptop "
        "CPU: " + ", ".join(f"{k} {v}" for k, v in PRESETS["cpu"].items()),
    )

    m = p.add_argument_group("model (the seed's names)")
    m.add_argument("--n-layer", type=int, metavar="N", help=f"transformer blocks (default: {d['n_layer']})")
    m.add_argument("--n-head", type=int, metavar="N", help=f"attention heads per block (default: {d['n_head']})")
    m.add_argument("--n-embd", type=int, metavar="N", help=f"width of every character vector (default: {d['n_embd']})")
    m.add_argument("--block-size", type=int, metavar="N", help=f"context length in characters (default: {d['block_size']})")
    m.add_argument("--dropout", type=float, metavar="X", help=f"dropout probability (default: {d['dropout']})")

    o = p.add_argument_group("optimisation")
    o.add_argument(
        "--batch-size", type=int, metavar="N",
        help=f"sequences per step per process; effective batch = batch_size x processes (default: {d['batch_size']})",
    )
    o.add_argument("--max-iters", type=int, metavar="N", help=f"optimizer steps in total (default: {d['max_iters']})")
    o.add_argument("--learning-rate", type=float, metavar="X", help=f"AdamW learning rate, the peak of a schedule (default: {d['learning_rate']})")
    o.add_argument(
        "--lr-schedule", choices=("constant", "cosine"),
        help="constant (the seed), or cosine decay from --learning-rate to --min-lr at --lr-decay-iters "
        f"(default: {d['lr_schedule']})",
    )
    o.add_argument("--warmup-iters", type=int, metavar="N", help=f"linear warm-up steps, for either schedule (default: {d['warmup_iters']})")
    o.add_argument(
        "--lr-decay-iters", type=int, metavar="N",
        help="step where the cosine schedule reaches --min-lr (its own horizon, not --max-iters, so a run "
        "extended with --resume --max-iters keeps its schedule); required by --lr-schedule cosine",
    )
    o.add_argument("--min-lr", type=float, metavar="X", help="final rate of the cosine schedule (default: learning_rate / 10)")
    o.add_argument("--weight-decay", type=float, metavar="X", help=f"AdamW weight decay, on every parameter as in the seed (default: {d['weight_decay']})")
    o.add_argument("--beta1", type=float, metavar="X", help=f"AdamW beta1 (default: {d['beta1']})")
    o.add_argument("--beta2", type=float, metavar="X", help=f"AdamW beta2 (default: {d['beta2']})")
    o.add_argument("--grad-clip", type=float, metavar="X", help=f"clip the gradient norm to this value; 0 = off (default: {d['grad_clip']})")

    e = p.add_argument_group("evaluation and checkpoints")
    e.add_argument(
        "--eval-interval", type=int, metavar="N",
        help="estimate the train and val loss, then save a checkpoint, every this many steps (the posts do not "
        f"publish it; default: {d['eval_interval']})",
    )
    e.add_argument(
        "--eval-iters", type=int, metavar="N",
        help=f"batches averaged per loss estimate (the posts do not publish it; default: {d['eval_iters']})",
    )
    e.add_argument("--eval-batch-size", type=int, metavar="N", help="sequences per evaluation batch (default: --batch-size)")

    r = p.add_argument_group("runtime")
    r.add_argument("--seed", type=int, metavar="N", help=f"seed for the initial weights and the batches (default: {d['seed']})")
    r.add_argument("--device", choices=DEVICE_CHOICES, help="auto = cuda, else mps, else cpu (default: auto)")
    r.add_argument(
        "--dtype", choices=tuple(DTYPES),
        help="fp32, or bf16/fp16 autocast (mixed precision; fp16 needs a GPU) (default: fp32)",
    )
    r.add_argument("--compile", action="store_true", help="torch.compile the model (slow start, faster steps on GPU)")
    r.add_argument(
        "--threads", type=int, metavar="N",
        help="CPU threads per process; 0 = torch's default (one per core). On a busy machine 1 is often much faster",
    )

    h = p.add_argument_group("Hugging Face Hub")
    h.add_argument("--push-to-hub", metavar="REPO_ID", help="push the folder to this Hub repo when training ends")
    h.add_argument("--push-every-eval", action="store_true", help="with --push-to-hub: also push after every checkpoint")
    return p


def resolve_settings(given: dict, saved: dict | None = None) -> dict:
    """The effective training settings: DEFAULTS < preset < `saved` (a resumed run's) < `given` flags."""
    settings = dict(DEFAULTS, preset=None)
    if saved:
        settings.update({k: v for k, v in saved.items() if k in settings})
    if given.get("preset"):
        settings.update(PRESETS[given["preset"]], preset=given["preset"])
    settings.update({k: v for k, v in given.items() if k in DEFAULTS})
    check_settings(settings)
    return settings


def check_settings(s: dict) -> None:
    """Refuse values the loop cannot run with; model dims are checked by TinyGPTConfig itself."""

    def flag(name):
        return "--" + name.replace("_", "-")

    for name in ("batch_size", "eval_interval", "eval_iters", "eval_batch_size", "lr_decay_iters"):
        value = s[name]
        if value is not None and value < 1:
            raise TrainingError(f"{flag(name)} must be at least 1, got {value}")
    for name in ("max_iters", "warmup_iters", "threads"):
        if s[name] < 0:
            raise TrainingError(f"{flag(name)} must be 0 or more, got {s[name]}")
    if not s["learning_rate"] > 0:
        raise TrainingError(f"--learning-rate must be positive, got {s['learning_rate']}")
    for name in ("min_lr", "weight_decay", "grad_clip"):
        if s[name] is not None and s[name] < 0:
            raise TrainingError(f"{flag(name)} must be 0 or more, got {s[name]}")
    for name in ("beta1", "beta2"):
        if not 0 <= s[name] < 1:
            raise TrainingError(f"{flag(name)} must be in [0, 1), got {s[name]}")
    if s["lr_schedule"] == "cosine":
        if s["lr_decay_iters"] is None:
            raise TrainingError(
                "--lr-schedule cosine needs --lr-decay-iters: the step where the rate reaches --min-lr "
                "(e.g. the planned --max-iters)"
            )
        if s["lr_decay_iters"] <= s["warmup_iters"]:
            raise TrainingError(
                f"--lr-decay-iters ({s['lr_decay_iters']}) must be larger than --warmup-iters ({s['warmup_iters']})"
            )


def model_config(settings: dict, vocab_size: int) -> TinyGPTConfig:
    """The model's config; impossible dims raise TinyGPTConfig's own ValueError, which names the field."""
    return TinyGPTConfig(vocab_size=vocab_size, **{k: settings[k] for k in (*MODEL_DIMS, "dropout")})


def learning_rate_at(step: int, s: dict) -> float:
    """The rate for the optimizer step taken at `step` (0-based): warm-up, then constant or cosine to min_lr."""
    peak = s["learning_rate"]
    if step < s["warmup_iters"]:
        return peak * (step + 1) / (s["warmup_iters"] + 1)
    if s["lr_schedule"] == "constant":
        return peak
    floor = s["min_lr"] if s["min_lr"] is not None else peak / 10
    if step >= s["lr_decay_iters"]:
        return floor
    progress = (step - s["warmup_iters"]) / (s["lr_decay_iters"] - s["warmup_iters"])
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def reproduce_command(settings: dict, data: str, out_dir: str, num_processes: int) -> str:
    """A command that trains this model again: the preset plus every setting that differs from it."""
    base = dict(DEFAULTS, **PRESETS.get(settings["preset"] or "", {}))
    launcher = "python" if num_processes == 1 else f"torchrun --nproc-per-node {num_processes}"
    parts = [launcher, "train.py", "--data", shlex.quote(data), "--out-dir", shlex.quote(out_dir)]
    if settings["preset"]:
        parts += ["--preset", settings["preset"]]
    for key in DEFAULTS:
        value = settings[key]
        if value == base[key] or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(parts)


# --------------------------------------------------------------------------------------------------- signals


class StopRequest:
    """SIGINT/SIGTERM ask the loop to save and stop at the end of the current step; a second one kills."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name
        self.uninstall()  # the next Ctrl-C or SIGTERM acts at once; the checkpoint on disk stays whole


# --------------------------------------------------------------------------------------------------- the run


class TrainingRun:
    """One invocation of train.py: set up from settings (and a resume state), then `run()` the loop."""

    def __init__(self, settings, data_path, out_dir, resume_state=None, start_time=None, push_to_hub=None,
                 push_every_eval=False, data_display=None, stop=None, overwrite=False):
        from accelerate import Accelerator

        self.s = settings
        self.out_dir = Path(out_dir)
        self.start_time = time.perf_counter() if start_time is None else start_time
        self.push_to_hub = push_to_hub
        self.push_every_eval = push_every_eval
        self.stop = stop or StopRequest()
        self.replace_old_model = overwrite  # --overwrite: the old files go just before the first save

        device = resolve_device(settings["device"])
        if settings["threads"]:
            torch.set_num_threads(settings["threads"])
        if settings["dtype"] == "fp16" and device.type == "cpu":
            raise TrainingError("--dtype fp16 needs a GPU (it relies on a gradient scaler); on CPU use bf16 or fp32")
        self.accelerator = Accelerator(
            cpu=device.type == "cpu",
            mixed_precision=DTYPES[settings["dtype"]],
            dynamo_backend="inductor" if settings["compile"] else "no",
            step_scheduler_with_optimizer=False,
        )
        acc = self.accelerator
        self.device = acc.device
        self.rank = acc.process_index
        self.world = acc.num_processes
        self.is_main = acc.is_main_process

        # Data: ids of the whole text, the seed's 90/10 split; the vocabulary is every character of the file.
        corpus = encode_corpus(data_path)
        self.chars = corpus.chars
        self.train_data, self.val_data = corpus.split()
        check_split_lengths(self.train_data, self.val_data, settings["block_size"], data_path)
        self.data_info = {
            "name": Path(data_path).name,
            "path": data_display or str(data_path),
            "characters": len(corpus),
            "vocab_size": len(self.chars),
        }
        self.data_path = Path(data_path).resolve()
        if resume_state is not None and resume_state["chars"] != "".join(self.chars):
            raise TrainingError(
                f"--resume: {data_path} has a different set of characters ({len(self.chars)}) than the text the "
                f"model in {out_dir} was trained on ({len(resume_state['chars'])}), so the vocabularies differ; "
                "resume with the original --data"
            )

        from .tokenization import tokenizer_from_characters
        from .modeling_tinygpt import TinyGPTForCausalLM

        self.tokenizer = tokenizer_from_characters(self.chars)
        config = model_config(settings, vocab_size=len(self.chars))
        torch.manual_seed(settings["seed"])  # the same initial weights in every process
        model = TinyGPTForCausalLM(config)
        if resume_state is not None:
            model.load_state_dict(resume_state["model"])
        self.n_params = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=learning_rate_at(0, settings),
            betas=(settings["beta1"], settings["beta2"]),
            weight_decay=settings["weight_decay"],
            **_fast_adamw(self.device),
        )
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.raw_model = acc.unwrap_model(self.model)  # the TinyGPTForCausalLM itself: eval, sample, save

        # Random streams: this process's batches (seed + process index) and its dropout (torch's global RNG).
        self.sampler = torch.Generator().manual_seed(settings["seed"] + self.rank)
        torch.manual_seed(settings["seed"] + self.rank)
        self.step = 0
        self.log_history: list[dict] = []
        self.best_val_loss = None
        self.prior_elapsed = 0.0
        self.resumed = resume_state is not None
        self.saved_step = None  # the step the folder's checkpoint holds
        if self.resumed:
            self._restore(resume_state)

    def _restore(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") is not None and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(state["scaler"])
        saved_ranks = state["rng"]
        if len(saved_ranks) == self.world:
            restore_rng(saved_ranks[self.rank], self.device, self.sampler)
        else:  # a different number of processes: continue, but the batches cannot be the same as before
            self.sampler.manual_seed(self.s["seed"] + self.rank + 1_000_003 * state["step"])
            torch.manual_seed(self.s["seed"] + self.rank + 1_000_003 * state["step"])
            self.print(
                f"note: resuming with {self.world} process(es) where the run used {len(saved_ranks)}: the weights and "
                "optimizer continue exactly, the random batches from here on are new ones"
            )
        self.step = self.saved_step = state["step"]
        self.log_history = list(state["log_history"])
        self.best_val_loss = state["best_val_loss"]
        self.prior_elapsed = state["elapsed_s"]

    def close(self) -> None:
        """Release the DDP wrapper, then the process group.

        Left to garbage collection, DDP's reducer can be the last owner of the gloo process group: its destructor
        then joins gloo's worker threads while holding the GIL, and a worker still releasing the last
        collective's tensors waits for that GIL: a deadlock (or, at interpreter exit, "terminate called without
        an active exception"). Freed while the process group is still registered, the reducer is not its last
        owner, and `destroy_process_group` joins the workers with the GIL released.
        """
        if self.world > 1:
            self.model, self.optimizer = self.accelerator.free_memory(self.model, self.optimizer)
        self.accelerator.end_training()

    # ------------------------------------------------------------------------------------------- reporting

    def print(self, *args, **kwargs):
        if self.is_main:
            print(*args, **kwargs, flush=True)

    def elapsed(self) -> float:
        return self.prior_elapsed + time.perf_counter() - self.start_time

    # ------------------------------------------------------------------------------------------- the loop

    def train_step(self, step: int) -> torch.Tensor:
        """One optimizer step of the seed's loop; returns the loss tensor (read it only when you must)."""
        s = self.s
        lr = learning_rate_at(step, s)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(self.train_data, s["block_size"], s["batch_size"], self.sampler, self.device)
        loss = self.model(x, shift_labels=y).loss  # the seed's F.cross_entropy over all B*T positions
        self.accelerator.backward(loss)
        if s["grad_clip"]:
            self.accelerator.clip_grad_norm_(self.model.parameters(), s["grad_clip"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    @torch.no_grad()
    def estimate_loss(self) -> tuple[float, float]:
        """The seed's estimate_loss: mean loss of eval_iters batches of each split, averaged over processes.

        Batches come from generators seeded afresh at every evaluation (the same batches each time, a
        different set per process), so evaluating never moves the training random streams, and a resumed run
        logs exactly the numbers an uninterrupted one would.
        """
        s = self.s
        batch_size = s["eval_batch_size"] or s["batch_size"]
        self.raw_model.eval()
        means = []
        for index, data in enumerate((self.train_data, self.val_data)):
            generator = torch.Generator().manual_seed(_eval_seed(s["seed"], self.rank, index))
            losses = torch.zeros(s["eval_iters"], device=self.device)
            for k in range(s["eval_iters"]):
                x, y = get_batch(data, s["block_size"], batch_size, generator, self.device)
                with self.accelerator.autocast():
                    losses[k] = self.raw_model(x, shift_labels=y, use_cache=False).loss
            means.append(losses.mean())
        self.raw_model.train()
        means = torch.stack(means)
        if self.world > 1:
            means = self.accelerator.reduce(means, reduction="mean")
        train_loss, val_loss = means.tolist()
        return train_loss, val_loss

    def should_stop(self, step: int) -> bool:
        """Whether a signal asked to stop; in a multi-process run every process must agree on the step."""
        if self.world == 1:
            return self.stop.signal_name is not None
        if step % 10 and step % self.s["eval_interval"]:
            return False  # synchronising costs a collective: do it every 10 steps
        flag = torch.tensor([self.stop.signal_name is not None], dtype=torch.int32, device=self.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item())

    def run(self) -> int:
        s = self.s
        if self.resumed and self.step >= s["max_iters"]:
            self.print(
                f"nothing to do: {self.out_dir} is already at step {self.step} and --max-iters is {s['max_iters']}; "
                "pass a larger --max-iters to train further"
            )
            return 0
        self.print(
            f"training {self.n_params:,} parameters on {self.data_info['path']} "
            f"({self.data_info['characters']:,} characters, {len(self.chars)} distinct): "
            f"{self.world} process(es) x batch {s['batch_size']} x {s['block_size']} characters per step, "
            f"steps {self.step} -> {s['max_iters']}, device {self.device.type}"
        )
        bar = self._progress_bar()
        last_postfix = 0.0
        step = self.step
        while True:
            at_eval = step % s["eval_interval"] == 0 or step == s["max_iters"]
            if at_eval and not (self.log_history and self.log_history[-1]["step"] == step):
                self._evaluate(step, bar)
                self.save(step)
                if self.push_every_eval:
                    self.push(step)
            if step >= s["max_iters"] or self.should_stop(step):
                break
            loss = self.train_step(step)
            step += 1
            self.step = step
            if bar is not None:
                bar.update(1)
                if time.perf_counter() - last_postfix > 0.5:
                    last_postfix = time.perf_counter()
                    bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{learning_rate_at(step - 1, s):.2e}", refresh=False)
        if bar is not None:
            bar.close()
        if self.saved_step != step:
            self.save(step)

        if self.stop.signal_name is not None and step < s["max_iters"]:
            resume = "python" if self.world == 1 else f"torchrun --nproc-per-node {self.world}"
            self.print(
                f"stopped by {self.stop.signal_name} at step {step}; saved to {self.out_dir}. Continue with: "
                f"{resume} train.py --out-dir {shlex.quote(str(self.out_dir))} --resume"
            )
            return 0
        last = self.log_history[-1]
        self.print(
            f"done: step {step}, train {last['train_loss']:.4f}, val {last['val_loss']:.4f} "
            f"(best {self.best_val_loss:.4f}) in {self.elapsed():.0f} s; saved to {self.out_dir}"
        )
        if self.push_to_hub and not self.push_every_eval:
            self.push(step)
        return 0

    def _evaluate(self, step, bar):
        train_loss, val_loss = self.estimate_loss()
        self.log_history.append({
            "step": step,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": learning_rate_at(max(step - 1, 0), self.s),  # the rate of the step that led here
            "elapsed_s": round(self.elapsed(), 3),
        })
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
        line = f"step {step}: train {train_loss:.4f}, val {val_loss:.4f}"
        if bar is not None:
            bar.write(line)
        else:
            self.print(line)

    def _progress_bar(self):
        if not (self.is_main and sys.stdout.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=self.s["max_iters"], initial=self.step, unit="it", dynamic_ncols=True, leave=True)

    # ------------------------------------------------------------------------------------------- saving

    def save(self, step: int) -> None:
        """Checkpoint `step` into the output folder; every process takes part, the main one writes."""
        rng = [capture_rng(self.device, self.sampler)]
        if self.world > 1:
            from accelerate.utils import gather_object

            rng = gather_object(rng)
        error = None
        if self.is_main:
            if self.replace_old_model:
                # Without its config.json first, the folder is briefly "no model" rather than new weights under an
                # old config of other dimensions.
                for name in OUTPUT_FILES:  # config.json first
                    (self.out_dir / name).unlink(missing_ok=True)
                self.replace_old_model = False
            try:
                write_checkpoint(self.out_dir, lambda staging: self._write_files(staging, step, rng))
            except OSError as err:
                error = self._describe_save_error(step, err)
        if self.world > 1:
            from accelerate.utils import broadcast_object_list

            error = broadcast_object_list([error])[0]
        if error:
            raise CheckpointError(error)
        self.saved_step = step

    def _describe_save_error(self, step, err) -> str:
        kept = f"the previous checkpoint (step {self.saved_step})" if self.saved_step is not None else "the folder"
        full = is_disk_full(err)
        return (
            f"could not save step {step} to {self.out_dir} ({'disk full' if full else 'write failed'}: "
            f"{err.strerror or err}); {kept} is intact. {'Free some space' if full else 'Fix that'} and continue "
            "with --resume"
        )

    def trainer_state(self, step: int) -> dict:
        """trainer_state.json: HF Trainer's names where they exist, plus what the model card shows."""
        return {
            "global_step": step,
            "max_steps": self.s["max_iters"],
            "best_val_loss": self.best_val_loss,
            "num_processes": self.world,
            "train_batch_size": self.s["batch_size"],
            "log_history": self.log_history,
            "training_args": dict(self.s, num_processes=self.world),
            "data": self.data_info,
        }

    def _write_files(self, staging: Path, step: int, rng: list[dict]) -> None:
        from .card import build_model_card
        from .plots import plot_losses

        self.raw_model.save_pretrained(staging)
        self.tokenizer.save_pretrained(staging)
        state = self.trainer_state(step)
        (staging / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        if self.log_history:
            plot_losses(self.log_history, staging / "loss.png", title=self.data_info["name"])
        card = build_model_card(
            staging,
            repo_id=self.push_to_hub or str(self.out_dir),
            sample=self.sample(),
            command=reproduce_command(self.s, self.data_info["path"], str(self.out_dir), self.world),
        )
        card.save(staging / "README.md")
        save_training_state(staging / TRAINING_STATE_NAME, {
            "step": step,
            "settings": self.s,
            "data_path": str(self.data_path),
            "data": self.data_info,
            "chars": "".join(self.chars),
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler is not None else None,
            "rng": rng,
            "log_history": self.log_history,
            "best_val_loss": self.best_val_loss,
            "elapsed_s": self.elapsed(),
            "num_processes": self.world,
        })

    @torch.no_grad()
    def sample(self, length: int = SAMPLE_LENGTH) -> str:
        """Text for the model card: `length` characters sampled from a newline, with a fixed seed.

        Runs inside `fork_rng`, so it never moves the training's random streams.
        """
        from .generate import generation_kwargs

        start = self.tokenizer.convert_tokens_to_ids("\n") if "\n" in self.chars else 0
        input_ids = torch.tensor([[start]], device=self.device)
        accelerated = self.device.type in ("cuda", "mps")
        self.raw_model.eval()
        with torch.random.fork_rng(
            devices=[self.device.index or 0] if accelerated else [],
            device_type=self.device.type if accelerated else "cuda",
        ):
            torch.manual_seed(self.s["seed"])
            with self.accelerator.autocast():
                out = self.raw_model.generate(
                    input_ids, attention_mask=torch.ones_like(input_ids), **generation_kwargs(length, 1.0, 0, 1.0)
                )
        self.raw_model.train()
        return self.tokenizer.decode(out[0].tolist())

    def push(self, step: int) -> None:
        """Push the folder with `tinygpt push`'s code; a failure is reported and training goes on."""
        if not self.is_main:
            return
        try:
            from .hub import push_folder

            last = self.log_history[-1] if self.log_history else {}
            message = f"step {step}" + (f": val loss {last['val_loss']:.4f}" if last.get("step") == step else "")
            url = push_folder(self.out_dir, self.push_to_hub, commit_message=message)
            self.print(f"pushed step {step} to {url}")
        except Exception as err:  # noqa: BLE001 - a failed upload must never cost the run
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            print(
                f"train.py: push to {self.push_to_hub} failed: {reason}; the local folder {self.out_dir} is intact",
                file=sys.stderr, flush=True,
            )


def _eval_seed(seed: int, rank: int, split: int) -> int:
    """Seeds of the evaluation batches: fixed per process and split, apart from the training streams."""
    return 0x5EED_0000_0000 + 1024 * (seed + rank) + split


def _fast_adamw(device: torch.device) -> dict:
    """Fused AdamW where torch has it for the device (one kernel for all parameters)."""
    return {"fused": True} if device.type in ("cuda", "cpu", "mps") else {}


# --------------------------------------------------------------------------------------------------- the command


def prepare_out_dir(out_dir: Path, resume: bool, overwrite: bool, is_main: bool) -> bool:
    """Refuse to overwrite a model silently, and check the folder can be written before training starts.

    Returns whether the folder was created here (so a run that fails to start can remove it again).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"--out-dir {out_dir} is a file; give a folder (it will be created if missing)")
    has_run = out_dir.is_dir() and any((out_dir / name).exists() for name in ("config.json", TRAINING_STATE_NAME))
    if has_run and not resume and not overwrite:
        step = _saved_step(out_dir)
        raise TrainingError(
            f"--out-dir {out_dir} already holds a model{f' (step {step})' if step is not None else ''}: continue it "
            "with --resume, replace it with --overwrite, or choose another --out-dir"
        )
    if not is_main:
        return False
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f"{STAGING_NAME}-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise TrainingError(f"--out-dir {out_dir} is not writable: {err.strerror or err}") from None
    return created


def _saved_step(out_dir: Path) -> int | None:
    try:
        return json.loads((out_dir / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_resume_dims(settings: dict, state: dict, given: dict, out_dir: Path) -> None:
    """A resumed run must build the same model as the saved one."""
    saved = state["settings"]
    changed = [f"--{k.replace('_', '-')} {given[k]} (saved: {saved[k]})" for k in MODEL_DIMS if settings[k] != saved[k]]
    if changed:
        raise TrainingError(
            f"--resume: {out_dir} holds a model of different dimensions than asked: {', '.join(changed)}. "
            "Resume with the saved dimensions, or start a new model with --overwrite or another --out-dir"
        )


def default_data_path() -> Path:
    """data/tinyshakespeare.txt of the current folder, else of the repository tinygpt was installed from."""
    if DEFAULT_DATA.exists():
        return DEFAULT_DATA
    return REPO_ROOT / DEFAULT_DATA


def quiet_libraries() -> None:
    """No progress bars or advice from the libraries: CI logs show only the run's own lines."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None, start_time: float | None = None) -> int:
    """`python train.py ...`: returns the exit code (0 done or stopped by a signal, 2 bad input or failed save)."""
    start_time = time.perf_counter() if start_time is None else start_time
    given = vars(build_parser().parse_args(argv))
    is_main = os.environ.get("RANK", "0") == "0"
    stop = StopRequest()
    run = None
    try:
        quiet_libraries()
        run = setup(given, start_time, stop)
        stop.install()
        return run.run()
    except (ValueError, OSError) as err:  # bad input or a failed save: one line, no traceback
        if is_main:
            print(f"train.py: error: {err}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: the folder keeps its last complete checkpoint
        if is_main:
            print("\ntrain.py: interrupted; the output folder keeps its last checkpoint", file=sys.stderr)
        return 130
    finally:
        stop.uninstall()
        if run is not None:
            run.close()


def setup(given: dict, start_time: float, stop: StopRequest | None = None) -> TrainingRun:
    """Validate everything that can be checked cheaply, then build the run (reads the corpus, builds the model)."""
    out_dir = Path(given.get("out_dir", DEFAULT_OUT_DIR))
    resume = given.get("resume", False)
    state = None
    if resume:
        if not out_dir.is_dir():
            raise TrainingError(f"--resume: {out_dir} does not exist; there is no run to continue")
        state = load_training_state(out_dir)
    settings = resolve_settings(given, state["settings"] if state else None)
    model_config(settings, vocab_size=1)  # impossible dims fail here, before the corpus is read
    resolve_device(settings["device"])
    if state:
        check_resume_dims(settings, state, given, out_dir)
    if "data" in given:
        data_path = Path(given["data"])
    elif state:
        data_path = Path(state["data_path"])
    else:
        data_path = default_data_path()
    if given.get("push_every_eval") and not given.get("push_to_hub"):
        raise TrainingError("--push-every-eval needs --push-to-hub REPO_ID")
    overwrite = given.get("overwrite", False) and not resume
    created = prepare_out_dir(out_dir, resume, overwrite, os.environ.get("RANK", "0") == "0")
    display = given.get("data") or (state["data"]["path"] if state else str(data_path))
    try:
        return TrainingRun(
            settings, data_path, out_dir, resume_state=state, start_time=start_time,
            push_to_hub=given.get("push_to_hub"), push_every_eval=given.get("push_every_eval", False),
            data_display=display, stop=stop, overwrite=overwrite,
        )
    except BaseException:
        if created:  # leave no empty folder behind a run that could not start
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
