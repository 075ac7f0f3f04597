"""A training on the engine: one request's job, from its place in line to the folder it leaves behind.

    job = Job(request, folder)                                        # a checked RunRequest; where the model goes
    stream = ThreadStream(job.work, name="tinygpt-train").start()     # tinygpt's Trainer, in a thread of its own
    async for items in stream.batches(): job.apply(items)             # copies of the engine's run state
    job.state, job.status, job.as_dict()                              # what the page and /train show

What the page draws is the engine's own `RunState` (copied on the engine's thread by `EngineBridge`, so the page
never reads a state that is being written), plus what only the line knows (`place`, `wait_s`) and the mean train
loss of each second (`losses`). The job's `status` is derived from those, never kept beside them.

torch trains with the server's thread count (--threads, default 1): a training takes one core, Generate keeps
the others. accelerate, which the Trainer needs, is imported only when a training starts.
"""

from __future__ import annotations

import copy
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import torch

from ..checkpoint import CheckpointError
from ..common import one_line
from ..demo import BadInput
from ..engine import Trainer  # accelerate is imported when a Trainer starts
from ..publish import ModelCardWriter
from ..run_state import RunState
from ..settings import TrainingDiverged, TrainingError, TrainingSettings
from ..trainer_callback import TrainerCallback
from .request import SCRATCH, SERVED, CheckedText, RunRequest

UPDATE_INTERVAL = 1.0  # seconds between copies of the run state while it trains (and points of the running loss)
ENDED = ("finished", "stopped", "time_limit", "cancelled")


# What an evaluation of the seed's model costs in the Train tab, in its own steps (batch 32): the losses over
# EVAL_ITERS batches of 128 of each split (about 2.5-3 steps a batch), the 300-character sample (18-24 steps) and the
# checkpoint with its card and plot (7 steps; the first one 40, matplotlib's import). benchmarks/README.md, "Words
# sooner", has the measurements.
EVAL_ITERS = 4  # the cpu preset's 10 cost 25-28 steps; 4 keep the standard error near 0.016 (same batches each time)
# The seed's model: a point on the curve about every 3 s; on tiny Shakespeare val <= 2.0 shows at step 700.
EVAL_EVERY = 175
# Only every SAMPLE_EVERY-th evaluation writes a sample (the first, step 0's random characters, included); the last
# step and the weights the folder keeps are always sampled. Costing as much as two loss estimates, samples every
# evaluation were a third of what it took to show val <= 2.0 beside the steps.
SAMPLE_EVERY = 2


def evaluation_settings(dims: tuple[int, int, int, int], max_iters: int = 0) -> dict:
    """How often the Train tab's runs evaluate (each evaluation is a point on the curve; every SAMPLE_EVERY-th also a
    sample on the page), over how many batches, and when they save, as TrainingSettings overrides. Every EVAL_EVERY
    steps for the seed's model; a bigger model's steps cost more (about n_layer x n_embd^2 x block_size), so it
    evaluates proportionally more often, down to every 25 steps; a smaller one less often, up to every 300 (its
    evaluations cost about as much: the sample). A run of `max_iters` steps evaluates at least 4 times.

    The folder is saved once, when the run ends (finished, stopped, or out of time): nobody can download a model
    before that, and a training that fails is reported and its folder deleted whatever it held, so checkpoints
    along the way (weights, card, loss plot) would only cost time. The best weights are kept in memory
    (keep="best") and are the ones saved."""
    n_layer, _, n_embd, block_size = dims
    cost = n_layer * n_embd**2 * block_size / (2 * 64**2 * 32)
    interval = int(min(300, max(25, EVAL_EVERY / cost // 25 * 25)))
    if max_iters:
        interval = min(interval, max(1, max_iters // 4))
    return {"eval_interval": interval, "eval_iters": EVAL_ITERS, "sample_interval": SAMPLE_EVERY * interval,
            "save_interval": 0}


@dataclass(frozen=True)
class LossPoint:
    """The mean train loss of the steps since the last point (about a second of training): the chart's grey line."""

    step: int
    loss: float


class EngineBridge(TrainerCallback):
    """The engine's events, handed to the page through `emit` (from the engine's thread): a copy of the run state
    at the start, after every evaluation and at the end, and about once a second while it trains (then after a
    LossPoint). `stop` is the stream's: once nobody reads what is emitted, the run stops at its next step."""

    def __init__(self, emit, stop: threading.Event, every: float = UPDATE_INTERVAL):
        self.emit, self.stop, self.every = emit, stop, every
        self.losses: list[float] = []
        self.last = time.monotonic()

    def on_train_begin(self, trainer):
        self.last = time.monotonic()
        self._send_state(trainer)

    def on_step_end(self, trainer, step, loss, lr):
        if self.stop.is_set():
            trainer.stop()
        self.losses.append(loss.item())
        if time.monotonic() - self.last >= self.every:
            self.emit(LossPoint(step, sum(self.losses) / len(self.losses)))
            self.losses, self.last = [], time.monotonic()
            self._send_state(trainer)

    def on_evaluate(self, trainer, record):
        self._send_state(trainer)

    def on_train_end(self, trainer, reason):
        self._send_state(trainer)

    def _send_state(self, trainer) -> None:
        state = copy.deepcopy(trainer.state)  # the engine goes on writing its own
        state.elapsed_s = round(trainer.elapsed(), 3)  # the engine records it at evaluations; the page's clock moves
        self.emit(state)


class Job:
    """One training: it waits in line holding its checked text, then runs tinygpt's Trainer in a ThreadStream.

    The handlers mark its life (`started` when the line lets it go, `ended` once its model is ready) and feed it
    what the engine emits (`apply`); Stop and a closed tab (`stop`, `abandon`) may come from any thread."""

    def __init__(self, request: RunRequest, folder: Path):
        text = request.text
        self.request = RunRequest(text.without_text(), request.dims, request.seconds, request.max_iters, request.base)
        # The text itself until the trainer holds it; a file the engine reads itself is not held at all.
        self._text: CheckedText | None = text if text.path is None else None
        self.seconds = request.seconds
        self.folder = folder
        self.state: RunState | None = None  # the engine's run state as of the last copy; None until it starts
        self.losses: list[LossPoint] = []
        self.place, self.wait_s = 0, 0.0  # while waiting: 1 = next in line; about how long until it starts
        self.started = self.ended = self.cancelled = False
        self.trainer = None
        self._state_at = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._finished = self._abandoned = False

    # -- what the page and /train show

    @property
    def status(self) -> str:
        """waiting, starting, training, stopping, then finished, stopped, time_limit (the engine's) or cancelled."""
        if self.cancelled and not self.started:
            return "cancelled"
        if not self.started:
            return "waiting"
        if self.ended and self.state is not None:
            return self.state.status
        if self._stop.is_set():
            return "stopping"
        return "starting" if self.state is None else "training"

    @property
    def done(self) -> bool:
        return self.status in ENDED

    @property
    def step(self) -> int:
        return self.state.global_step if self.state else 0

    @property
    def max_steps(self) -> int:
        return self.state.max_steps if self.state else 0

    @property
    def elapsed_s(self) -> float:
        """The engine's clock: as of the last copy, moving on between copies while it trains (but never past the
        time budget: the run then only finishes its step, evaluation and save)."""
        if self.state is None:
            return 0.0
        if self.done or not self.state.global_step:
            return self.state.elapsed_s
        return min(self.state.elapsed_s + time.monotonic() - self._state_at, max(self.seconds, self.state.elapsed_s))

    def time_left(self) -> float:
        if self.done:
            return 0.0
        elapsed = self.elapsed_s
        budget = max(0.0, self.seconds - elapsed)
        if self.step <= 0 or not self.max_steps:
            return budget
        return min(budget, (self.max_steps - self.step) * elapsed / self.step)

    def as_dict(self) -> dict:
        """/train's progress dict (documented in app.py's docstring and the README)."""
        state = self.state or RunState()
        return {
            "status": self.status, "place": self.place, "wait_s": round(self.wait_s, 1),
            "step": self.step, "max_iters": self.max_steps,
            "elapsed_s": round(self.elapsed_s, 2), "time_left_s": round(self.time_left(), 2),
            "train_loss": self.losses[-1].loss if self.losses else None, "n_params": state.n_params,
            "text": self.request.text.name, "characters": self.request.text.characters,
            "start_from": SERVED if self.request.base else SCRATCH,
            "base_model": self.request.base.label if self.request.base else None,
            "best_step": state.best_step, "best_val_loss": state.best_val_loss, "warnings": list(state.warnings),
            "evaluations": [dict(e) for e in state.log_history],
        }

    def apply(self, item) -> None:
        """What the engine's thread emitted, on the event loop: a copy of the run state, or a LossPoint."""
        if isinstance(item, LossPoint):
            self.losses.append(item)
        else:
            self.state, self._state_at = item, time.monotonic()

    # -- stopping

    def stop(self) -> str:
        """Stop pressed: leave the line, or stop after the current step (the engine then evaluates and saves what
        was trained). Thread-safe; returns what happened in words."""
        if not self.started:
            self.cancelled = True
            self._stop.set()  # should the line let it go meanwhile, it stops at once
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
            finished = self._finished or self.trainer is None and not self.started
        if finished:
            shutil.rmtree(self.folder.parent, ignore_errors=True)

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    # -- the training, in the stream's thread

    def settings(self) -> TrainingSettings:
        n_layer, n_head, n_embd, block_size = self.request.dims
        overrides = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                         max_seconds=self.seconds,
                         # The server's --threads, which this run trains on: recorded as it is (not 0, "every core"),
                         # so the card's reproduce command trains the same way.
                         threads=torch.get_num_threads(),
                         keep="best",  # the folder's model (Generate, Download, Push) is the best-val one
                         **evaluation_settings(self.request.dims, self.request.max_iters))
        if self.request.max_iters:
            overrides.update(max_iters=self.request.max_iters, lr_decay_iters=max(self.request.max_iters, 51))
        try:
            return TrainingSettings.from_preset("cpu", **overrides)
        except (TrainingError, ValueError) as err:
            raise BadInput(f"These settings cannot train: {one_line(err)}") from None

    def work(self, emit, stop: threading.Event) -> None:
        """The training (ThreadStream's `work`). Failures are raised as one line for the page (gr.Error)."""
        name, base = self.request.text.name, self.request.base
        try:
            settings = self.settings()
            text = self._text or self.request.text
            try:
                data = {"data_path": text.path} if text.path is not None else {"text": text.text}
                # Named after the folder that is downloaded (and pushed), not the server's temporary path to it.
                trainer = Trainer(settings, **data, out_dir=self.folder,
                                  callbacks=[ModelCardWriter(), EngineBridge(emit, stop)],
                                  data_name=slug(name), run_name=self.folder.name,
                                  init_from=base.source if base is not None else None)
            except (TrainingError, ValueError) as err:
                raise BadInput(f"Cannot train on {name}: {one_line(err)}") from None
            except ImportError as err:  # accelerate is missing: serving works, training does not
                raise BadInput(f"Training is not available on this server: {one_line(err)} (pip install tinygpt)") \
                    from None
            self._text = text = None  # the trainer holds what it needs
            self.trainer = trainer
            if self._stop.is_set() or stop.is_set():
                trainer.stop()
            try:
                trainer.train()
            except CheckpointError as err:  # a write failed: the folder keeps its last complete checkpoint
                raise BadInput(f"Training stopped: the server could not save the model: {self.no_paths(err)}. "
                               "Your previous model, if any, is still here.") from None
            except TrainingDiverged as err:  # its message advises train.py's flags: say it in the page's words
                raise BadInput(f"Training stopped: the loss stopped being a number ({err.value}) at step {err.step}, "
                               "which happens when the learning rate is too high for the model. Your previous model, "
                               "if any, is still here.") from None
            except TrainingError as err:
                raise BadInput(f"Training stopped: {self.no_paths(err)}. Your previous model, if any, is "
                               "still here.") from None
        except BadInput:
            raise
        except Exception as err:  # a bug or an out-of-memory: one line for the user
            raise gr.Error(f"Training failed: {self.no_paths(err)}.") from None
        finally:
            self.trainer = None  # the optimizer, data and model go with it; the folder holds the result
            with self._lock:
                self._finished = True
                abandoned = self._abandoned
            if abandoned:
                shutil.rmtree(self.folder.parent, ignore_errors=True)

    def no_paths(self, err: BaseException) -> str:
        """An error's first line, without a final full stop and without the server's temporary folders in it (the
        visitor knows the model by its folder's name)."""
        root = self.folder.parent.parent  # every session's runs
        text = re.sub(re.escape(str(root)) + r"[^\s:;,()'\"]*", self.folder.name, one_line(err))
        return text.rstrip(".")


def slug(text_name: str) -> str:
    """A text's name as a folder name's part: "the pasted text" -> "pasted-text", "my file.txt" -> "my-file"."""
    name = Path(text_name).stem.lower().removeprefix("the ")
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40] or "text"


def folder_name(text_name: str) -> str:
    return f"tinygpt-{slug(text_name)}"
