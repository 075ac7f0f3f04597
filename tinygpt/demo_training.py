"""The demo's Train tab, server side: the checks of a request (text, model size, time budget: each once), the line
of trainings waiting for a slot, a training in its own thread on tinygpt's engine, and the page's view of it.

    trainings = Trainings(Sessions(), bundled_text=Path("data/tinyshakespeare.txt"))
    page = TrainPage(progress=..., curve=..., ...)          # app.py makes the components and owns them
    async for updates in trainings.train_page(page, source, pasted, upload, size, seconds, start, request): ...
    async for progress in trainings.train_api(text, model_size, seconds, max_iters, start_from, request): ...  # /train

The page gets `{component: gr.update(...)}` dicts keyed by `page`'s components, so nothing is matched by position;
/train gets the same progress as plain dicts. Which model each session uses is `tinygpt.sessions`'s business.
A training starts from scratch (random weights, the chosen size) or fine-tunes the served model (`ServedModel`:
the engine's `init_from`, so its size and characters win and new characters are added).
accelerate, which the engine's Trainer needs, is imported only when a training starts, so serving never needs it;
gradio is needed, so `import tinygpt` never imports this module.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import gradio as gr

from .checkpoint import CheckpointError
from .common import one_line
from .corpus import CorpusError, decode_utf8
from .data import shortest_text, split_index
from .demo import BadInput, Loaded, ModelError, ThreadStream, TinyGPTDemo, check_string, load_model
from .engine import Trainer, TrainerCallback  # accelerate is imported when a Trainer starts
from .publish import ModelCardWriter
from .sessions import Session, Sessions
from .settings import TrainingDiverged, TrainingError, TrainingSettings

# Training in the demo. The whole text is held in memory (as a string and as ids) while it trains, and a shared
# CPU server reads and encodes 10 MB in a few seconds: bigger texts are for train.py.
TRAIN_MAX_BYTES = 10 * 1024 * 1024
TRAIN_SECONDS = 60  # the time budget's default: the seed's model reaches val < 2.0 on tiny Shakespeare by then
TRAIN_MAX_SECONDS = 300  # the budget's cap (--train-max-seconds)
TRAIN_MIN_SECONDS = 5
TRAIN_CONCURRENCY = 1  # trainings at once (--train-concurrency); more wait in line and see their place
MAX_WAITING = 16  # trainings allowed to wait in line (each holds its text, up to 10 MB); more are turned away
TRAIN_UPDATE_INTERVAL = 1.0  # seconds between streamed training updates (and points of the running train loss)
LINE_POLL = 0.25  # how often a waiting training looks whether a slot is free
# Model sizes offered in the Train tab: (n_layer, n_head, n_embd, block_size). The first is the default (the seed's
# model). Short labels: the page's dropdown shows them whole on a phone.
MODEL_SIZES = {
    "2 layers · 4 heads · 64 wide · context 32": (2, 4, 64, 32),
    "4 layers · 4 heads · 128 wide · context 64": (4, 4, 128, 64),
    "1 layer · 4 heads · 32 wide · context 16": (1, 4, 32, 16),
}
SIZE_HELP = ("The first is the blog's model. The bigger one takes longer per step (give it more time); the tiny one "
             "suits short texts. Or type your own: layers · heads · width · context.")
DEFAULT_SIZE = next(iter(MODEL_SIZES))
# Where a training starts: /train's `start_from` and the page's "Start from" choice.
SCRATCH, SERVED = "scratch", "served"
SIZE_LIMITS = {"layers": 8, "heads": 16, "width": 512, "context": 256}  # what a shared CPU trains in minutes
LN2 = math.log(2)


def bits(loss: float) -> float:
    """A loss in nats per character (what cross-entropy gives) as bits per character."""
    return loss / LN2


# ------------------------------------------------------------------------------------------ checking a request


def parse_size(size) -> tuple[int, int, int, int]:
    """(n_layer, n_head, n_embd, block_size) from one of MODEL_SIZES, or any text with those four whole numbers in
    that order ("3 layers · 4 heads · 96 wide · context 48")."""
    if not isinstance(size, str):
        raise BadInput(f"The model size must be text such as '{DEFAULT_SIZE}', got {type(size).__name__}")
    if size in MODEL_SIZES:
        return MODEL_SIZES[size]
    numbers = re.findall(r"[-+]?\d+(?:[.,]\d+)?", size)  # signs and decimals too, so "-2" is not read as 2
    if len(numbers) != 4:
        raise BadInput(f"Model size {size!r}: give four numbers, layers · heads · width · context, "
                       f"e.g. '3 layers · 4 heads · 96 wide · context 48'")
    for name, number in zip(SIZE_LIMITS, numbers):
        if not number.isdigit() or not 1 <= int(number) <= SIZE_LIMITS[name]:
            raise BadInput(f"Model size {size!r}: {name} must be a whole number from 1 to {SIZE_LIMITS[name]} in "
                           f"this demo (got {number}); train.py trains any size")
    layers, heads, width, context = map(int, numbers)
    if width % heads:
        divisors = [h for h in range(1, min(width, SIZE_LIMITS["heads"]) + 1) if width % h == 0]
        raise BadInput(f"Model size {size!r}: a width of {width} does not split into {heads} heads of equal size; "
                       f"use {', '.join(map(str, divisors))} heads, or a width that {heads} divides")
    return layers, heads, width, context


def size_label(dims: tuple[int, int, int, int]) -> str:
    """(n_layer, n_head, n_embd, block_size) in the words of MODEL_SIZES."""
    layers, heads, width, context = dims
    return f"{layers} layer{'s' if layers != 1 else ''} · {heads} heads · {width} wide · context {context}"


@dataclass(frozen=True)
class ServedModel:
    """The model the server serves, as a training's starting point: `source` is what `--model` named (a folder or
    a Hub repo id; the engine's init_from loads it again), `label` how the page names it, `dims` its size."""

    source: str
    label: str
    dims: tuple[int, int, int, int]

    @classmethod
    def of(cls, loaded: Loaded) -> "ServedModel":
        c = loaded.model.config
        return cls(str(loaded.source), loaded.facts["source"], (c.n_layer, c.n_head, c.n_embd, c.block_size))

    def note(self) -> str:
        """What the page says under the size choice while fine-tuning."""
        return (f"Fine-tuning keeps the served model's size ({size_label(self.dims)}) and its characters; "
                "characters new to it are added.")


def check_start(start_from) -> str:
    if start_from not in (SCRATCH, SERVED):
        raise BadInput(f"start_from must be {SCRATCH!r} (random weights) or {SERVED!r} (fine-tune the model this "
                       f"server serves), got {start_from!r}")
    return start_from


def check_seconds(seconds, cap: float) -> float:
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise BadInput(f"The time budget must be a number of seconds, got {seconds!r}") from None
    if not TRAIN_MIN_SECONDS <= seconds <= cap:
        raise BadInput(f"The time budget must be between {TRAIN_MIN_SECONDS} and {cap:g} seconds (this server's "
                       f"cap), got {seconds:g}")
    return seconds


def check_max_iters(max_iters) -> int:
    if isinstance(max_iters, bool) or not isinstance(max_iters, (int, float, str)):
        raise BadInput(f"max_iters must be a whole number, got {max_iters!r}")
    try:
        value = int(max_iters)
    except (TypeError, ValueError):
        raise BadInput(f"max_iters must be a whole number, got {max_iters!r}") from None
    if value != float(max_iters) or value < 0:
        raise BadInput(f"max_iters must be 0 (the preset's 2,400 steps) or a whole number of steps, got {max_iters}")
    return value


def too_big(name: str, size: int) -> str:
    return (f"Too big: {name} is {size / 2**20:.1f} MB, and this demo trains on at most {TRAIN_MAX_BYTES // 2**20} MB "
            "(the server holds the whole text in memory while it trains). Use train.py for bigger texts.")


@dataclass
class TrainingText:
    """A text that passed every check: read once, checked once, then trained on."""

    text: str | None
    name: str  # how the page names it: "the pasted text", "tinyshakespeare.txt", ...
    # A file the server has (the bundled text): the engine reads it itself, so the card's reproduce command names
    # it by its path in the project (`--data data/tinyshakespeare.txt`) and the folder carries no copy of it.
    path: Path | None = None


def check_text(text, name: str, block_size: int) -> TrainingText:
    """The one check of a training text (pasted, uploaded, bundled or sent to /train) for a model of `block_size`."""
    text = check_string(text, name[0].upper() + name[1:])
    if not text.strip():
        raise BadInput(f"Nothing to train on: {name} is empty. Paste or upload some text (a few thousand characters "
                       "or more).")
    size = len(text.encode("utf-8"))
    if size > TRAIN_MAX_BYTES:
        raise BadInput(too_big(name, size))
    n = len(text)
    if min(split_index(n), n - split_index(n)) < block_size + 1:  # the seed's split: each part needs a context
        raise BadInput(f"Too short to train on: {name} has {n:,} characters, and a model that reads {block_size} "
                       f"characters at a time needs at least {shortest_text(block_size):,}: the last 10 % is kept "
                       f"aside to measure the loss and must be longer than those {block_size}. Give a longer text, "
                       "or pick a model with a shorter context.")
    return TrainingText(text, name)


def read_upload(path: str | os.PathLike, block_size: int) -> TrainingText:
    """An uploaded (or the bundled) .txt, read once and checked, or a BadInput that says what is wrong with it."""
    path = Path(path)
    name = path.name
    size = path.stat().st_size
    if size > TRAIN_MAX_BYTES:
        raise BadInput(too_big(name, size))
    if size == 0:
        raise BadInput(f"{name} is empty: upload a file with some text in it")
    data = path.read_bytes()
    if b"\0" in data[:8192]:  # binary data (or UTF-16 text, which is full of zero bytes)
        raise BadInput(f"{name} is not a text file: it looks like a picture or a program, or text saved in another "
                       "encoding. Save it as plain text (UTF-8) and upload it again.")
    try:
        text = decode_utf8(data, name)
    except CorpusError as err:  # where the first byte that is not UTF-8 sits, in the corpus reader's words
        where = re.search(r"byte (\d+) \((0x[0-9a-f]+)\)", str(err))
        at = f" (byte {int(where[1]):,} is {where[2]})" if where else ""
        raise BadInput(f"{name} is not saved as UTF-8 text{at}: save it as UTF-8 in your editor (Save as…, "
                       "encoding UTF-8) and upload it again.") from None
    del data
    return check_text(text, name, block_size)


# --------------------------------------------------------------------------------------------- a training's run


@dataclass
class TrainProgress:
    """What a training has done so far: the page draws it, /train streams it as a dict (`as_dict`)."""

    text_name: str
    characters: int
    max_seconds: float
    base: str | None = None  # the model it fine-tunes (how the page names it); None: from scratch
    status: str = "waiting"  # waiting, starting, training, stopping, then finished, stopped, time_limit, cancelled
    place: int = 0  # while waiting: 1 = next in line
    wait_s: float = 0.0  # while waiting: about how long until it starts
    step: int = 0
    max_iters: int = 0
    elapsed_s: float = 0.0
    n_params: int | None = None
    running: list = field(default_factory=list)  # (step, mean train loss over the last second)
    evaluations: list = field(default_factory=list)  # the engine's records: step, train/val loss, elapsed, sample
    best_step: int | None = None  # the evaluation with the lowest val loss: the model the run offers
    best_val_loss: float | None = None
    warnings: list = field(default_factory=list)  # the engine's plain words: memorising, overfitting

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "time_limit", "cancelled")

    def time_left(self) -> float:
        if self.done:
            return 0.0
        budget = max(0.0, self.max_seconds - self.elapsed_s)
        if self.step <= 0 or not self.max_iters:
            return budget
        by_steps = (self.max_iters - self.step) * self.elapsed_s / self.step
        return min(budget, by_steps)

    def as_dict(self) -> dict:
        return {
            "status": self.status, "place": self.place, "wait_s": round(self.wait_s, 1),
            "step": self.step, "max_iters": self.max_iters,
            "elapsed_s": round(self.elapsed_s, 2), "time_left_s": round(self.time_left() or 0.0, 2),
            "train_loss": self.running[-1][1] if self.running else None, "n_params": self.n_params,
            "text": self.text_name, "characters": self.characters, "start_from": SERVED if self.base else SCRATCH,
            "base_model": self.base,
            "best_step": self.best_step, "best_val_loss": self.best_val_loss, "warnings": list(self.warnings),
            "evaluations": [dict(e) for e in self.evaluations],
        }


class Bridge(TrainerCallback):
    """The engine's events, as tuples for `TrainingJob.apply`: the start, every evaluation (with the run state's
    best step and warnings), and the running train loss about once a second (the mean since the last point).
    `stop` is the stream's: once nobody reads the events, the run stops at its next step."""

    def __init__(self, emit, stop: threading.Event):
        self.emit, self.stop = emit, stop
        self.losses: list[float] = []
        self.last = time.monotonic()

    def on_train_begin(self, trainer):
        state = _state(trainer)
        self.emit(("begin", state["global_step"], state["max_steps"], state["n_params"]))
        self.last = time.monotonic()

    def on_step_end(self, trainer, step, loss, lr):
        if self.stop.is_set():
            trainer.stop()
        self.losses.append(loss.item())
        now = time.monotonic()
        if now - self.last >= TRAIN_UPDATE_INTERVAL:
            self.emit(("step", step, sum(self.losses) / len(self.losses), trainer.elapsed()))
            self.losses, self.last = [], now

    def on_evaluate(self, trainer, record):
        state = _state(trainer)
        self.emit(("eval", dict(record), state["best_step"], state["best_val_loss"], state["warnings"]))


def _state(trainer) -> dict:
    """What the page needs from the engine's run state (`trainer.state`, a RunState), read in one place."""
    state = trainer.state
    return {"global_step": state.global_step, "max_steps": state.max_steps, "n_params": state.n_params,
            "best_step": state.best_step, "best_val_loss": state.best_val_loss, "warnings": list(state.warnings)}


class TrainingJob:
    """One training: waits in line holding its checked text, then runs the engine's Trainer in a ThreadStream.

    torch runs the training with the server's thread count (--threads, default 1), so a training takes one core
    and Generate keeps the others.
    """

    def __init__(self, text: TrainingText, dims: tuple[int, int, int, int], seconds: float, max_iters: int,
                 folder: Path, base: ServedModel | None = None):
        self.base = base  # fine-tune this model (its size wins), or None: from scratch with `dims`
        self.dims = base.dims if base is not None else dims
        self.seconds, self.max_iters = seconds, max_iters
        self.folder = folder
        self.progress = TrainProgress(text.name, len(text.text), seconds, base=base.label if base else None)
        if text.path is not None:  # the engine reads the file itself: hold no copy while waiting
            text = TrainingText(None, text.name, text.path)
        self.text = text
        self.trainer = None
        self.cancelled = False  # Stop while it waits: it leaves the line
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._finished = self._abandoned = False

    def stop(self) -> str:
        """Stop pressed: leave the line, or stop after the current step (the engine then evaluates and saves what
        was trained). Thread-safe; returns what happened in words."""
        if self.progress.status == "waiting":
            self.cancelled = True
            return "Stopped before it started: your place in line is given up."
        if self._stop.is_set():
            return "Already stopping: the model is being evaluated and saved with what it has learnt so far."
        self._stop.set()
        trainer = self.trainer
        if trainer is not None:
            trainer.stop()
        return "Stopping: the model keeps what it has learnt so far; it is being evaluated and saved…"

    def abandon(self) -> None:
        """Nobody is watching any more (tab closed, stream cancelled): stop, and delete the folder once saved."""
        self.cancelled = True
        self.stop()
        with self._lock:
            self._abandoned = True
            finished = self._finished or self.trainer is None and self.progress.status == "waiting"
        if finished:
            shutil.rmtree(self.folder.parent, ignore_errors=True)

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    def settings(self) -> TrainingSettings:
        n_layer, n_head, n_embd, block_size = self.dims
        overrides = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                         max_seconds=self.seconds, threads=0,  # threads 0: keep the server's --threads
                         keep="best",  # the folder's model (Generate, Download, Push) is the best-val one
                         eval_interval=eval_interval_for(self.dims), eval_iters=EVAL_ITERS)
        if self.max_iters:
            overrides.update(max_iters=self.max_iters, lr_decay_iters=max(self.max_iters, 51),
                             eval_interval=min(overrides["eval_interval"], max(1, self.max_iters // 4)))
        try:
            return TrainingSettings.from_preset("cpu", **overrides)
        except (TrainingError, ValueError) as err:
            raise BadInput(f"These settings cannot train: {one_line(err)}") from None

    def work(self, emit, stop: threading.Event) -> None:
        """The training, in the stream's thread. Failures are raised as one line for the page (gr.Error)."""
        name = self.progress.text_name
        try:
            settings = self.settings()
            try:
                # Named after the folder that is downloaded (and pushed), not the server's temporary path to it.
                data = {"data_path": self.text.path} if self.text.path is not None else {"text": self.text.text}
                trainer = Trainer(settings, **data, out_dir=self.folder,
                                  callbacks=[ModelCardWriter(), Bridge(emit, stop)],
                                  data_name=_slug(name), run_name=self.folder.name,
                                  init_from=self.base.source if self.base is not None else None)
            except (TrainingError, ValueError) as err:
                raise BadInput(f"Cannot train on {name}: {one_line(err)}") from None
            except ImportError as err:  # accelerate is missing: serving works, training does not
                raise BadInput(f"Training is not available on this server: {one_line(err)} (pip install tinygpt)") \
                    from None
            self.text = None  # the trainer holds what it needs
            self.trainer = trainer
            if self._stop.is_set() or stop.is_set():
                trainer.stop()
            try:
                reason = trainer.train()
            except CheckpointError as err:  # a write failed: the folder keeps its last complete checkpoint
                raise BadInput(f"Training stopped: the server could not save the model: {_no_paths(err, self)}. "
                               "Your previous model, if any, is still here.") from None
            except TrainingDiverged as err:  # its message advises train.py's flags: say it in the page's words
                raise BadInput(f"Training stopped: the loss stopped being a number ({err.value}) at step {err.step}, "
                               "which happens when the learning rate is too high for the model. Your previous model, "
                               "if any, is still here.") from None
            except TrainingError as err:
                raise BadInput(f"Training stopped: {_no_paths(err, self)}. Your previous model, if any, is "
                               "still here.") from None
            emit(("end", reason, trainer.elapsed()))
        except BadInput:
            raise
        except Exception as err:  # a bug or an out-of-memory: one line for the user
            raise gr.Error(f"Training failed: {_no_paths(err, self)}.") from None
        finally:
            self.trainer = None  # the optimizer, data and model go with it; the folder holds the result
            with self._lock:
                self._finished = True
                abandoned = self._abandoned
            if abandoned:
                shutil.rmtree(self.folder.parent, ignore_errors=True)

    def apply(self, event) -> None:
        """Fold one event from the worker into `progress` (on the event loop)."""
        p = self.progress
        kind = event[0]
        if kind == "begin":
            _, p.step, p.max_iters, p.n_params = event
            p.status = "training"
        elif kind == "step":
            _, p.step, loss, p.elapsed_s = event
            p.running.append((p.step, loss))
        elif kind == "eval":
            _, record, p.best_step, p.best_val_loss, p.warnings = event
            p.evaluations.append(record)
            p.step = max(p.step, record.get("step", 0))
            p.elapsed_s = max(p.elapsed_s, record.get("elapsed_s", 0.0))
        elif kind == "end":
            _, p.status, p.elapsed_s = event
            if p.evaluations:
                p.step = max(p.step, p.evaluations[-1]["step"])
        if self._stop.is_set() and not p.done:
            p.status = "stopping"


def _no_paths(err: BaseException, job: TrainingJob) -> str:
    """An error's first line, without a final full stop and without the server's temporary folders in it (the
    visitor knows the model by its folder's name)."""
    root = job.folder.parent.parent  # Trainings.root: every session's runs
    text = re.sub(re.escape(str(root)) + r"[^\s:;,()'\"]*", job.folder.name, one_line(err))
    return text.rstrip(".")


# What an evaluation of the seed's model costs in the Train tab, in its own steps (batch 32): the losses over
# EVAL_ITERS batches of 128 of each split (about 2.5-3 steps a batch), the 300-character sample (18-24 steps) and the
# checkpoint with its card and plot (7 steps). benchmarks/README.md, "Words sooner", has the measurements.
EVAL_ITERS = 4  # the cpu preset's 10 cost 25-28 steps; 4 keep the standard error near 0.016 (same batches each time)
# The seed's model: a val point about every 3 s (was 5), evaluating about a quarter of the time (was a fifth); on tiny
# Shakespeare val <= 2.0 then shows at step 700 instead of 900, for about 0.8x the work.
EVAL_EVERY = 175


def eval_interval_for(dims: tuple[int, int, int, int]) -> int:
    """Every EVAL_EVERY steps for the seed's model; a bigger model's steps cost more (about n_layer x n_embd^2 x
    block_size), so it evaluates proportionally more often, down to every 25 steps; a smaller one less often, up to
    every 300 (its evaluations cost about as much: the sample and the checkpoint)."""
    n_layer, _, n_embd, block_size = dims
    cost = n_layer * n_embd**2 * block_size / (2 * 64**2 * 32)
    return int(min(300, max(25, EVAL_EVERY / cost // 25 * 25)))


class TrainingLine:
    """Trainings at once (`slots`) and the line behind them. Kept here rather than in gradio's queue, so that a
    place can be said in words ("2nd in line, about 40 s"), Stop can leave the line, and the page and /train wait
    in the same line."""

    def __init__(self, slots: int = TRAIN_CONCURRENCY, max_waiting: int = MAX_WAITING):
        self.slots, self.max_waiting = slots, max_waiting
        self.running: list[TrainingJob] = []
        self.waiting: list[TrainingJob] = []
        self._lock = threading.Lock()

    def join(self, job: TrainingJob) -> None:
        with self._lock:
            if len(self.waiting) >= self.max_waiting:
                raise BadInput(f"{len(self.waiting)} trainings are already waiting, the most this server lets wait. "
                               "Try again in a few minutes.")
            self.waiting.append(job)

    def leave(self, job: TrainingJob) -> None:
        with self._lock:
            for jobs in (self.waiting, self.running):
                if job in jobs:
                    jobs.remove(job)

    def try_start(self, job: TrainingJob) -> bool:
        """Whether `job` may start now (it then counts as running)."""
        with self._lock:
            free = self.slots - len(self.running)
            if job in self.waiting[:max(0, free)]:
                self.waiting.remove(job)
                self.running.append(job)
                return True
            return False

    def place(self, job: TrainingJob) -> tuple[int, float]:
        """(1 for next in line, 2 behind one, ...; about how many seconds until it starts): the running trainings'
        time left, then each one ahead taking its whole budget on the first slot to free up."""
        with self._lock:
            ahead = self.waiting[: self.waiting.index(job)] if job in self.waiting else []
            free_at = sorted(j.progress.time_left() for j in self.running)
            free_at += [0.0] * max(0, self.slots - len(free_at))
            for other in ahead:
                free_at.sort()
                free_at[0] += other.seconds
            return len(ahead) + 1, min(free_at, default=0.0)


# ------------------------------------------------------------------------------------------------ the page view


@dataclass(frozen=True, eq=False)
class TrainPage:
    """The components a training updates. app.py makes them (it alone owns the page); the view returns
    `{component: update}` dicts keyed by these, so nothing is matched by position."""

    train_button: object
    progress: object
    curve: object
    samples: object
    result: object  # the group with Download and Push, shown once there is a model
    download: object
    model_choice: object
    facts: object

    def components(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]


# The loss chart's series, in plain words, and their colours (distinct, and readable on white).
HELD_OUT = "held-out text (last 10 %)"
TRAINING = "training text (each evaluation)"
RUNNING = "training text, last second"
SERIES = {HELD_OUT: "#e6550d", TRAINING: "#2171b5", RUNNING: "#9e9e9e"}


def loss_chart(p: TrainProgress):
    """The loss chart as a Vega-Lite spec (gradio's Plot draws it with Vega, as wide as the page): lines with a
    point at every evaluation (so the first evaluation shows before there is any line), both axes titled, and a
    legend below the plot that fits a phone. gr.skip() until the first evaluation."""
    from gradio.components.plot import AltairPlotData

    if not p.evaluations:
        return gr.skip()
    first = p.evaluations[0]
    rows = [{"step": first["step"], "loss": first["train_loss"], "series": RUNNING}]
    rows += [{"step": s, "loss": loss, "series": RUNNING} for s, loss in p.running if s > first["step"]]
    for e in p.evaluations:
        rows.append({"step": e["step"], "loss": e["train_loss"], "series": TRAINING})
        rows.append({"step": e["step"], "loss": e["val_loss"], "series": HELD_OUT})
    x = {"field": "step", "type": "quantitative", "title": "step (batches trained on)",
         "axis": {"tickCount": 5, "format": ",d"}, "scale": {"domainMin": 0}}
    y = {"field": "loss", "type": "quantitative", "title": "loss (lower is better)", "scale": {"zero": False}}
    color = {"field": "series", "type": "nominal", "title": None,
             "scale": {"domain": list(SERIES), "range": list(SERIES.values())},
             "legend": {"orient": "bottom", "direction": "vertical", "labelLimit": 0, "symbolType": "stroke"}}
    tooltip = [{"field": "series", "type": "nominal"}, {"field": "step", "type": "quantitative"},
               {"field": "loss", "type": "quantitative", "format": ".3f"}]
    evaluated = {"filter": {"field": "series", "oneOf": [HELD_OUT, TRAINING]}}
    running = {"filter": {"field": "series", "equal": RUNNING}}
    # The axes and colours are shared by every layer (gradio's chart theme recolours a layer's own colour scale).
    layers = [
        {"transform": [running], "mark": {"type": "line", "strokeWidth": 1.5}, "encoding": {}},
        {"transform": [evaluated], "mark": {"type": "line", "strokeWidth": 2.5}, "encoding": {}},
        {"transform": [evaluated], "mark": {"type": "point", "filled": True, "size": 60, "strokeWidth": 0},
         "encoding": {"tooltip": tooltip}},
    ]
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "data": {"values": rows},
            "height": 260, "encoding": {"x": x, "y": y, "color": color}, "layer": layers,
            # SVG: crisp text at any zoom, and the page (and its tests) can read the axes and the legend.
            "usermeta": {"embedOptions": {"renderer": "svg", "actions": False}}}
    return AltairPlotData(plot=json.dumps(spec), chart="line")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def progress_line(p: TrainProgress, error: str | None = None) -> str:
    """The progress in words: the place in line, the step and the time, the verdict; the warnings below."""
    if p.status == "waiting":
        return (f"### Waiting: {ordinal(p.place)} in line, about {p.wait_s:.0f} s\n"
                f"One training at a time runs on this server; yours ({p.text_name}, {p.characters:,} characters) "
                "starts when a slot frees up. **Stop** gives your place up.")
    if p.status == "cancelled":
        return "Stopped before it started: your place in line is given up. Press **Train** to line up again."
    if error:
        head = f"**{error}**"
    elif p.done:
        head = {"finished": f"**Finished: all {p.max_iters:,} steps done.**",
                "stopped": f"**Stopped at step {p.step:,}: kept what it learnt.**",
                "time_limit": f"**Time budget used up ({p.max_seconds:g} s) at step {p.step:,}.**"}[p.status]
    elif p.status == "starting" or not p.max_iters:
        head = "**Starting…** (reading the text, building the model)"
    else:
        head = (f"**Training**: step {p.step:,} / {p.max_iters:,} · {p.elapsed_s:.0f} s of {p.max_seconds:g} s · "
                f"about {p.time_left():.0f} s left" + (" · stopping…" if p.status == "stopping" else ""))
    lines = [head, started_from(p)]
    if p.evaluations:
        last = p.evaluations[-1]
        lines.append(f"Val loss **{last['val_loss']:.3f}** at step {last['step']:,} "
                     f"({bits(last['val_loss']):.2f} bits per character).")
    if p.done and not error and p.best_step is not None:
        lines.append(f"The model you now use, download and push is the one from **step {p.best_step:,}**, where "
                     f"the val loss was lowest ({p.best_val_loss:.3f}). This tab's Generate and See inside use it "
                     "(**Model** at the top switches back).")
    lines += [f"⚠️ {w}" for w in p.warnings]
    return "  \n".join(lines)


def started_from(p: TrainProgress) -> str:
    if p.base:
        return (f"Fine-tuning the served model **{p.base}** on {p.text_name}: it starts from its weights, size and "
                "characters.")
    return f"From scratch on {p.text_name}: random weights to begin with."


def samples_html(p: TrainProgress) -> str:
    """The newest sample in full, the older ones folded (a click opens each): the page stays short."""
    if not p.evaluations:
        return '<p class="samples-note">A sample of what the model writes appears here after each evaluation.</p>'
    parts = []
    for i, e in enumerate(reversed(p.evaluations)):
        title = f"step {e['step']:,} · val {e['val_loss']:.3f}"
        text = html.escape(e.get("sample") or "")
        if i == 0:
            parts.append(f'<div class="sample newest"><p><strong>Newest sample: {title}</strong></p><pre>{text}</pre>'
                         "</div>")
        else:
            parts.append(f'<details class="sample"><summary>{title}</summary><pre>{text}</pre></details>')
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------- trainings


class Trainings:
    """The Train tab's server side: the line of trainings, the page's stream and /train's, Stop, download, push.
    `bundled_text` is the file offered as the default text (app.py's data/tinyshakespeare.txt), None for none;
    `served` the model a training may fine-tune (the one the server serves), None to offer only from scratch."""

    def __init__(self, sessions: Sessions, max_seconds: float = TRAIN_MAX_SECONDS, hub_login: bool = False,
                 bundled_text: str | os.PathLike | None = None, concurrency: int = TRAIN_CONCURRENCY,
                 served: ServedModel | None = None):
        self.sessions = sessions
        self.served = served
        self.bundled_text = Path(bundled_text) if bundled_text else None
        self.max_seconds = max_seconds
        self.hub_login = hub_login  # the Hub's "Sign in" button (a Space with OAuth)
        self.line = TrainingLine(concurrency)
        self.root = Path(tempfile.mkdtemp(prefix="tinygpt-demo-"))  # every session's runs; removed at exit

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def has_bundled_text(self) -> bool:
        return self.bundled_text is not None and self.bundled_text.is_file()

    # -- the page

    def read_page_text(self, source, pasted, upload, block_size: int) -> TrainingText:
        if source == "bundled":
            if not self.has_bundled_text:
                raise BadInput("The bundled tiny Shakespeare is not on this server; paste or upload a text instead")
            checked = read_upload(self.bundled_text, block_size)
            return TrainingText(checked.text, checked.name, path=self.bundled_text)
        if source == "upload":
            if not upload:
                raise BadInput("No file uploaded yet: choose a .txt file (UTF-8), or pick another text source")
            return read_upload(upload, block_size)
        return check_text(pasted, "the pasted text", block_size)

    def _start(self, start_from, size) -> tuple[tuple[int, int, int, int], ServedModel | None]:
        """(the model's size, the model to fine-tune or None). Fine-tuning keeps the served model's size: the size
        asked for is then not even read."""
        if check_start(start_from) == SCRATCH:
            return parse_size(size), None
        if self.served is None:
            raise BadInput("This server offers no model to fine-tune: start from scratch")
        return self.served.dims, self.served

    async def train_page(self, page: TrainPage, source, pasted, upload, size, seconds, start_from,
                         request: gr.Request) -> AsyncIterator[dict]:
        """The Train button: checks the request at once, waits in line, trains; yields the page's updates."""
        session = self._idle_session(request)
        dims, base = self._start(start_from, size)
        seconds = check_seconds(seconds, self.max_seconds)
        text = await asyncio.to_thread(self.read_page_text, source, pasted, upload, dims[3])
        progress = None
        try:
            async for progress, ready in self._run(session, text, dims, seconds, max_iters=0, base=base):
                updates = {page.progress: progress_line(progress), page.curve: loss_chart(progress),
                           page.samples: samples_html(progress)}
                updates[page.train_button] = gr.update(interactive=progress.done)
                if ready is not None:
                    updates.update({
                        page.result: gr.update(visible=True),
                        page.download: gr.update(value=str(session.zip_path), visible=True),
                        page.model_choice: gr.update(value="trained", visible=True),
                        page.facts: ready.facts_markdown(),
                    })
                yield updates
        except gr.Error as err:  # the line says it too, not only a toast that goes away
            if progress is not None:
                yield {page.progress: progress_line(progress, error=err.message)}
            raise

    # -- the API: /train(text, model_size, seconds, max_iters, start_from)

    async def train_api(self, text: str, model_size: str = DEFAULT_SIZE, seconds: float = TRAIN_SECONDS,
                        max_iters: int = 0, start_from: str = SCRATCH,
                        request: gr.Request = None) -> AsyncIterator[dict]:
        """Train a new model on `text` for this client session; streams progress as dicts (see the docstring of
        app.py). `max_iters` 0 is the cpu preset's 2400 steps; the time budget ends a run sooner. `start_from`
        "served" fine-tunes the served model (its size wins: `model_size` is ignored)."""
        session = self._idle_session(request)
        dims, base = self._start(start_from, model_size)
        seconds = check_seconds(seconds, self.max_seconds)
        max_iters = check_max_iters(max_iters)
        checked = check_text(text, "the text", dims[3])
        del text
        async for progress, _ in self._run(session, checked, dims, seconds, max_iters, base):
            yield progress.as_dict()

    def _idle_session(self, request) -> Session:
        session = self.sessions.get(request, create=True)
        job = session.job
        if job is not None:
            what = {"waiting": "is already waiting in line", "stopping": "is saving a stopped training"}.get(
                job.progress.status, "is already training")
            raise BadInput(f"This tab {what}: one training at a time. Press Stop to end it, or wait for it.")
        return session

    # -- the training stream shared by both

    async def _run(self, session: Session, text: TrainingText, dims, seconds: float, max_iters: int,
                   base: ServedModel | None = None):
        """Yields (progress, None) while it waits and trains (about once a second), then (progress, the new model)."""
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=self.root)) / _folder_name(text.name)
        job = TrainingJob(text, dims, seconds, max_iters, folder, base)
        del text
        try:
            self.line.join(job)
        except BadInput:
            shutil.rmtree(folder.parent, ignore_errors=True)
            raise
        session.job = job
        finished = False
        stream = None
        try:
            shown = None
            while not self.line.try_start(job):
                if job.cancelled:
                    job.progress.status = "cancelled"
                    yield job.progress, None
                    return
                job.progress.place, job.progress.wait_s = self.line.place(job)
                if shown is None or time.monotonic() - shown >= TRAIN_UPDATE_INTERVAL:
                    shown = time.monotonic()
                    yield job.progress, None
                await asyncio.sleep(LINE_POLL)
            job.progress.status, job.progress.place, job.progress.wait_s = "starting", 0, 0.0
            stream = ThreadStream(job.work, name="tinygpt-train").start()
            yield job.progress, None
            # Wake at least once a second, so elapsed and time left move even during a long evaluation.
            async for events in stream.batches(wake_every=TRAIN_UPDATE_INTERVAL):
                for event in events:
                    job.apply(event)
                p = job.progress
                if not events and p.status == "training" and p.step:
                    p.elapsed_s += TRAIN_UPDATE_INTERVAL  # between reports: the clock still runs
                yield p, None
            if job.abandoned:  # the tab closed meanwhile: its folder is being deleted, nothing to adopt
                return
            ready = await asyncio.to_thread(self._adopt, session, job)
            finished = True
            yield job.progress, ready
        finally:
            if stream is not None:
                await stream.aclose()
            self.line.leave(job)
            if session.job is job:
                session.job = None
            if not finished:  # error, cancelled, or the stream was closed (tab gone, client cancelled)
                job.abandon()

    def _adopt(self, session: Session, job: TrainingJob) -> TinyGPTDemo:
        """Load the saved folder (exactly what Download gives) as this session's model, and zip it."""
        p = job.progress
        how = f"fine-tuned in this tab from {p.base}" if p.base else "trained in this tab"
        label = f"{how} on {p.text_name} ({p.characters:,} characters)"
        try:
            ready = TinyGPTDemo(load_model(job.folder, label=label))
        except ModelError as err:
            raise gr.Error(f"The trained model could not be loaded back: {_no_paths(err, job)}.") from None
        zip_path = Path(shutil.make_archive(str(job.folder), "zip", root_dir=job.folder.parent,
                                            base_dir=job.folder.name))
        self.sessions.adopt(session, ready, job.folder, zip_path)
        return ready

    # -- Stop, download, push

    def stop(self, request: gr.Request) -> str:
        """Stop: leaves the line, or stops the training (which is then evaluated and saved). The answer goes to the
        progress line (no toast: on a phone it would cover the page), which the training's stream then updates."""
        session = self.sessions.get(request)
        job = session.job if session is not None else None
        return job.stop() if job is not None else "Nothing is training in this tab."

    def download(self, request: gr.Request) -> str:
        session = self.sessions.get(request)
        if session is None or session.zip_path is None:
            raise BadInput("No trained model in this session yet: train one first (the Train tab)")
        return str(session.zip_path)

    def push(self, repo_id: str, token: str, request: gr.Request, oauth_token=None) -> str:
        from tinygpt.hub import HubError, push_model

        session = self.sessions.get(request)
        if session is None or session.folder is None:
            raise BadInput("No trained model in this session yet: train one first, then push it")
        repo_id = check_string(repo_id, "The repo id").strip()
        if not repo_id:
            raise BadInput("Give a repo id to push to, e.g. your-name/tiny-shakespeare. Your model is still here to "
                           "download.")
        # Only the visitor's own token: never the server's (HF_TOKEN / hf auth login), which would let anyone
        # write to the server owner's account.
        token = check_string(token, "The token").strip() or getattr(oauth_token, "token", None)
        if not token:
            how = "sign in with the button, or paste" if self.hub_login else "paste"
            raise BadInput(f"No Hugging Face token: {how} a token with write access "
                           "(https://huggingface.co/settings/tokens). Your model is still here to download.")
        try:
            result = push_model(session.folder, repo_id, token=token)
        except (HubError, ValueError) as err:
            # The Hub code names the folder it pushed: here a server's temporary path, which the visitor never saw.
            message = one_line(err)
            for path in (session.folder, session.folder.parent):
                message = message.replace(str(path), "your model")
            raise BadInput(f"Push failed: {message.rstrip('.')}. Your model is still here to download.") from None
        return f"Pushed to [{result.repo_id}]({result.tree_url}) (commit {result.commit[:8]})."


def _slug(text_name: str) -> str:
    name = Path(text_name).stem.lower().removeprefix("the ")
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40] or "text"


def _folder_name(text_name: str) -> str:
    return f"tinygpt-{_slug(text_name)}"


def hub_login_available() -> bool:
    """The Hub's "Sign in" button works on a Space whose README says `hf_oauth: true` (it then has OAUTH_CLIENT_ID)
    and has gradio's OAuth extras (`gradio[oauth]` in requirements.txt)."""
    import importlib.util

    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID")
                and importlib.util.find_spec("itsdangerous") and importlib.util.find_spec("authlib"))
