"""The demo's Train tab, server side: per-session trained models (`Sessions`), trainings in their own threads on
tinygpt's engine (`TrainingJob`), the checks of the text, the upload and the model size, and what the page draws
from a training's progress (loss curve, progress line, samples).

    trainings = Trainings(Sessions(), bundled_text=Path("data/tinyshakespeare.txt"))
    # the page: prepare(...) then train_page(request); the API: train_api(text, ...); stop, download, push

Every browser tab (gradio session) trains its own model; when it ends, that session's Generate and See inside use
it (`Trainings.model_for`). accelerate, which the engine's Trainer needs, is imported only when a training starts,
so serving never needs it; gradio is needed, so `import tinygpt` never imports this module.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from .common import code_fence, one_line
from .corpus import CorpusError, read_corpus
from .data import shortest_text, split_index
from .demo import BadInput, ModelError, TinyGPTDemo, load_model
from .engine import Trainer, TrainerCallback  # accelerate, which a Trainer needs, is imported when one starts
from .publish import ModelCardWriter
from .settings import TrainingError, TrainingSettings

_DONE = object()  # the end of a training's event stream

# Training in the demo. The whole text is held in memory (as a string and as ids) while it trains, and a shared
# CPU server reads and encodes 10 MB in a few seconds: bigger texts are for train.py.
TRAIN_MAX_BYTES = 10 * 1024 * 1024
TRAIN_SECONDS = 60  # the time budget's default: the seed's model reaches val < 2.0 on tiny Shakespeare by then
TRAIN_MAX_SECONDS = 300  # the budget's cap (--train-max-seconds)
TRAIN_MIN_SECONDS = 5
TRAIN_CONCURRENCY = 1  # trainings at once (--train-concurrency); more wait in the queue and see their place
MAX_TRAINED_MODELS = 16  # sessions whose trained model is kept; beyond that the least recently used is dropped
SESSION_IDLE_SECONDS = 3600  # a session unused this long loses its trained model (a closed tab loses it at once)
TRAIN_UPDATE_INTERVAL = 1.0  # seconds between streamed training updates (and points of the running train loss)
# Model sizes offered in the Train tab: (n_layer, n_head, n_embd, block_size). The first is the default.
MODEL_SIZES = {
    "2 layers · 4 heads · 64 wide · context 32 (the seed's model)": (2, 4, 64, 32),
    "4 layers · 4 heads · 128 wide · context 64 (bigger: slower steps, needs more time)": (4, 4, 128, 64),
    "1 layer · 4 heads · 32 wide · context 16 (tiny: for short texts)": (1, 4, 32, 16),
}
DEFAULT_SIZE = next(iter(MODEL_SIZES))
SIZE_LIMITS = {"layers": 8, "heads": 16, "width": 512, "context": 256}  # what a shared CPU trains in minutes


# -------------------------------------------------------------------------------------------------- sessions


@dataclass
class Session:
    """What one browser tab (one gradio session) owns: the model it trained and the training it runs."""

    trained: TinyGPTDemo | None = None  # the last model this session trained
    folder: Path | None = None  # that model's folder (what train.py writes), and `zip_path` the same zipped
    zip_path: Path | None = None
    use_trained: bool = False  # the page's model choice: Generate and See inside use `trained`
    state: str = "idle"  # idle -> waiting (in the training queue) -> training -> (stopping ->) idle
    pending: dict | None = None  # what the page asked to train, until the queue lets it start
    job: "TrainingJob | None" = None
    last_used: float = field(default_factory=time.monotonic)

    def drop_model(self) -> None:
        self.trained, self.use_trained = None, False
        if self.folder is not None:
            shutil.rmtree(self.folder.parent, ignore_errors=True)  # the run's folder: model + zip
        self.folder = self.zip_path = None


class Sessions:
    """Per-session state, kept here rather than in gr.State: a closed tab's gr.State lives on for an hour, and
    memory must stay bounded. A session is dropped when its tab closes (demo.unload), after an hour unused, or,
    beyond MAX_TRAINED_MODELS trained models, least recently used first."""

    def __init__(self, max_models: int = MAX_TRAINED_MODELS, idle_seconds: float = SESSION_IDLE_SECONDS):
        self.max_models = max_models
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, request: gr.Request | None, create: bool = False) -> Session | None:
        key = getattr(request, "session_hash", None)
        if key is None:
            return Session() if create else None
        with self._lock:
            self._expire()
            session = self._sessions.get(key)
            if session is None and create:
                session = self._sessions[key] = Session()
            if session is not None:
                session.last_used = time.monotonic()
            return session

    def drop(self, key: str | None) -> None:
        """The tab closed: stop its training, forget its model."""
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is not None:
            _release(session)

    def keep_model(self, session: Session) -> None:
        """Called when `session` got a new model: drop the oldest others' models beyond the cap."""
        with self._lock:
            holders = sorted((s for s in self._sessions.values() if s.trained is not None and s is not session),
                             key=lambda s: s.last_used)
            for old in holders[: max(0, len(holders) + 1 - self.max_models)]:
                old.drop_model()

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if now - s.last_used > self.idle_seconds and s.job is None]:
            _release(self._sessions.pop(key))

    def __len__(self) -> int:
        return len(self._sessions)


def _release(session: Session) -> None:
    if session.job is not None:
        session.job.abandon()
    session.pending = None
    session.drop_model()


# -------------------------------------------------------------------------------------------------- training


def parse_size(size: str) -> tuple[int, int, int, int]:
    """(n_layer, n_head, n_embd, block_size) from one of MODEL_SIZES, or any text with those four numbers in that
    order ("3 layers · 4 heads · 96 wide · context 48")."""
    if size in MODEL_SIZES:
        return MODEL_SIZES[size]
    numbers = [int(n) for n in re.findall(r"\d+", str(size or ""))]
    if len(numbers) != 4:
        raise BadInput(f"Model size {size!r}: give four numbers, layers · heads · width · context, "
                       f"e.g. '3 layers · 4 heads · 96 wide · context 48'")
    layers, heads, width, context = numbers
    for name, value in zip(SIZE_LIMITS, numbers):
        if not 1 <= value <= SIZE_LIMITS[name]:
            raise BadInput(f"Model size {size!r}: {name} must be between 1 and {SIZE_LIMITS[name]} in this demo "
                           f"(got {value}); train.py trains any size")
    if width % heads:
        divisors = [h for h in range(1, min(width, SIZE_LIMITS["heads"]) + 1) if width % h == 0]
        raise BadInput(f"Model size {size!r}: a width of {width} does not split into {heads} heads of equal size; "
                       f"use {', '.join(map(str, divisors))} heads, or a width that {heads} divides")
    return layers, heads, width, context


def too_big(name: str, size: int) -> str:
    return (f"Too big: {name} is {size / 2**20:.1f} MB, and this demo trains on at most {TRAIN_MAX_BYTES // 2**20} MB "
            "(the server holds the whole text in memory while it trains). Use train.py for bigger texts.")


def check_text(text: str, name: str) -> str:
    if not text or not text.strip():
        raise BadInput(f"Nothing to train on: {name} is empty. Paste or upload some text (a few thousand characters "
                       "or more).")
    size = len(text.encode("utf-8"))
    if size > TRAIN_MAX_BYTES:
        raise BadInput(too_big(name, size))
    return text


def check_length(text: str, name: str, block_size: int) -> None:
    """Both parts of the seed's split (first 90 % to train on, last 10 % to measure) need a whole context."""
    need = block_size + 1
    n = len(text)
    if min(split_index(n), n - split_index(n)) < need:
        raise BadInput(f"Too short to train on: {name} has {n:,} characters, and a context of {block_size} needs at "
                       f"least {shortest_text(block_size):,}. The last 10 % is held out to measure the loss and must "
                       f"hold {need} characters (context + 1). Give a longer text, or pick a model with a shorter "
                       "context.")


def read_upload(path: str | os.PathLike) -> tuple[str, str]:
    """(text, file name) of an uploaded .txt, or a BadInput that says what is wrong with it."""
    path = Path(path)
    name = path.name
    size = path.stat().st_size
    if size > TRAIN_MAX_BYTES:
        raise BadInput(too_big(name, size))
    with path.open("rb") as f:
        if b"\0" in f.read(8192):
            raise BadInput(f"{name} is not a text file (it contains NUL bytes: binary data, or UTF-16 text); "
                           "upload plain text saved as UTF-8")
    try:
        text = read_corpus(path)
    except CorpusError as err:  # empty, or not UTF-8 (with the byte offset, in train.py's words)
        raise BadInput(one_line(err).replace(str(path), name)) from None
    return check_text(text, name), name


def check_seconds(seconds, cap: float) -> float:
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise BadInput(f"The time budget must be a number of seconds, got {seconds!r}") from None
    if not TRAIN_MIN_SECONDS <= seconds <= cap:
        raise BadInput(f"The time budget must be between {TRAIN_MIN_SECONDS} and {cap:g} seconds (this server's "
                       f"cap), got {seconds:g}")
    return seconds


@dataclass
class TrainProgress:
    """What a training has done so far: the page draws it, /train streams it as a dict."""

    text_name: str
    characters: int
    max_seconds: float
    status: str = "starting"  # starting, training, stopping, finished, stopped, time_limit
    step: int = 0
    max_iters: int = 0
    elapsed_s: float = 0.0
    n_params: int | None = None
    running: list = field(default_factory=list)  # (step, mean train loss over the last second)
    evaluations: list = field(default_factory=list)  # the engine's records: step, train/val loss, elapsed, sample

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "time_limit")

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
            "status": self.status, "step": self.step, "max_iters": self.max_iters,
            "elapsed_s": round(self.elapsed_s, 2), "time_left_s": round(self.time_left() or 0.0, 2),
            "train_loss": self.running[-1][1] if self.running else None, "n_params": self.n_params,
            "text": self.text_name, "characters": self.characters,
            "evaluations": [dict(e) for e in self.evaluations],
        }


class TrainingJob:
    """One training in its own thread: the engine's Trainer, with its events bridged to the event loop.

    torch runs the training with the server's thread count (--threads, default 1), so a training takes one core
    and Generate keeps the others.
    """

    def __init__(self, text: str, text_name: str, dims: tuple[int, int, int, int], seconds: float,
                 max_iters: int, folder: Path):
        self.text, self.dims, self.seconds, self.max_iters = text, dims, seconds, max_iters
        self.folder = folder
        self.progress = TrainProgress(text_name, len(text), seconds)
        self.trainer = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._finished = self._abandoned = False

    def start(self, emit) -> None:
        self.thread = threading.Thread(target=self._work, args=(emit,), name="tinygpt-train", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current step; the engine then saves what was trained (thread-safe)."""
        self._stop.set()
        trainer = self.trainer
        if trainer is not None:
            trainer.stop()

    def abandon(self) -> None:
        """Nobody is watching any more (tab closed, stream cancelled): stop, and delete the folder once saved."""
        self.stop()
        with self._lock:
            self._abandoned = True
            finished = self._finished
        if finished:
            shutil.rmtree(self.folder.parent, ignore_errors=True)

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    def _work(self, emit) -> None:
        try:
            n_layer, n_head, n_embd, block_size = self.dims
            overrides = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                             max_seconds=self.seconds, threads=0,  # threads 0: keep the server's --threads
                             keep="best",  # the folder's model (Generate, Download, Push) is the best-val one
                             eval_interval=eval_interval_for(self.dims))
            if self.max_iters:
                overrides.update(max_iters=self.max_iters, lr_decay_iters=max(self.max_iters, 51),
                                 eval_interval=min(overrides["eval_interval"], max(1, self.max_iters // 4)))
            try:
                settings = TrainingSettings.from_preset("cpu", **overrides)
            except (TrainingError, ValueError) as err:
                raise BadInput(f"These settings cannot train: {one_line(err)}") from None
            bridge = Bridge(emit)
            check_length(self.text, self.progress.text_name, block_size)
            try:
                # Named after the folder that is downloaded (and pushed), not the server's temporary path to it.
                trainer = Trainer(settings, text=self.text, out_dir=self.folder, callbacks=[ModelCardWriter(), bridge],
                                  data_name=_slug(self.progress.text_name), run_name=self.folder.name)
            except (TrainingError, ValueError) as err:  # empty text, shorter than the context, ...
                raise BadInput(f"Cannot train on {self.progress.text_name}: {one_line(err)}") from None
            except ImportError as err:  # accelerate is missing: serving works, training does not
                raise BadInput(f"Training is not available on this server: {one_line(err)} (pip install tinygpt)") \
                    from None
            self.text = None  # the trainer holds what it needs
            self.trainer = trainer
            if self._stop.is_set():
                trainer.stop()
            try:
                reason = trainer.train()
            except (TrainingError, ValueError) as err:
                raise BadInput(f"Cannot train on {self.progress.text_name}: {one_line(err)}") from None
            emit(("end", reason, trainer.step, trainer.elapsed()))
        except BadInput as err:
            emit(("error", err))
        except Exception as err:  # a bug or an out-of-memory: one line for the user
            emit(("error", gr.Error(f"Training failed: {one_line(err)}")))
        finally:
            self.trainer = None  # the optimizer, data and model go with it; the folder holds the result
            with self._lock:
                self._finished = True
                abandoned = self._abandoned
            if abandoned:
                shutil.rmtree(self.folder.parent, ignore_errors=True)
            emit(_DONE)

    def apply(self, event) -> None:
        """Fold one event from the worker into `progress` (on the event loop)."""
        p = self.progress
        kind = event[0]
        if kind == "begin":
            _, p.step, p.max_iters, p.n_params = event
            p.status = "stopping" if self._stop.is_set() else "training"
        elif kind == "step":
            _, p.step, loss, p.elapsed_s = event
            p.running.append((p.step, loss))
        elif kind == "eval":
            record = dict(event[1])
            p.evaluations.append(record)
            p.step = max(p.step, record.get("step", 0))
            p.elapsed_s = max(p.elapsed_s, record.get("elapsed_s", 0.0))
        elif kind == "end":
            _, reason, p.step, p.elapsed_s = event
            p.status = reason
        if self._stop.is_set() and not p.done:
            p.status = "stopping"


def eval_interval_for(dims: tuple[int, int, int, int]) -> int:
    """The cpu preset evaluates the seed's model every 300 steps (every few seconds); a bigger model's steps cost
    more (about n_layer x n_embd^2 x block_size), so it evaluates proportionally more often: new samples every few
    seconds whatever the size."""
    n_layer, _, n_embd, block_size = dims
    cost = n_layer * n_embd**2 * block_size / (2 * 64**2 * 32)
    return int(min(300, max(25, 300 / cost // 25 * 25)))


class Bridge(TrainerCallback):
    """Hands the engine's events to `emit`: every evaluation, and the running train loss about once a second (the
    mean over the steps since the last point)."""

    def __init__(self, emit):
        self.emit = emit
        self.losses: list[float] = []
        self.last = time.monotonic()

    def on_train_begin(self, trainer):
        self.emit(("begin", trainer.step, trainer.settings.max_iters, trainer.n_params))
        self.last = time.monotonic()

    def on_step_end(self, trainer, step, loss, lr):
        self.losses.append(loss.item())
        now = time.monotonic()
        if now - self.last >= TRAIN_UPDATE_INTERVAL:
            self.emit(("step", step, sum(self.losses) / len(self.losses), trainer.elapsed()))
            self.losses, self.last = [], now

    def on_evaluate(self, trainer, record):
        self.emit(("eval", record))


class Trainings:
    """The Train tab's server side: text sources, the training stream, download and push. `bundled_text` is the
    file offered as the default text (app.py's data/tinyshakespeare.txt), None or missing for none."""

    def __init__(self, sessions: Sessions, max_seconds: float = TRAIN_MAX_SECONDS, hub_login: bool = False,
                 bundled_text: str | os.PathLike | None = None):
        self.sessions = sessions
        self.bundled_text = Path(bundled_text) if bundled_text else None
        self.max_seconds = max_seconds
        self.hub_login = hub_login  # the Hub's "Sign in" button (a Space with OAuth)
        self.root = Path(tempfile.mkdtemp(prefix="tinygpt-demo-"))  # every session's runs; removed at exit

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def has_bundled_text(self) -> bool:
        return self.bundled_text is not None and self.bundled_text.is_file()

    # -- the page: check the request at once (before the queue), then train when the queue lets it

    def prepare(self, source, pasted, upload, size, seconds, request: gr.Request):
        session = self.sessions.get(request, create=True)
        if session.state != "idle":
            what = {"waiting": "is already waiting for a free training slot",
                    "training": "is already training", "stopping": "is saving a stopped training"}[session.state]
            raise BadInput(f"This tab {what}: one training at a time. Press Stop to end it, or wait for it.")
        dims = parse_size(size)
        seconds = check_seconds(seconds, self.max_seconds)
        if source in ("bundled", "upload"):
            if source == "bundled" and not self.has_bundled_text:
                raise BadInput("The bundled tiny Shakespeare is not on this server; paste or upload a text instead")
            if source == "upload" and not upload:
                raise BadInput("No file uploaded yet: choose a .txt file (UTF-8), or pick another text source")
            path = self.bundled_text if source == "bundled" else Path(upload)
            text, name = read_upload(path)
            # While it waits, the session keeps the file's path, not its text (a queue of 10 MB texts adds up).
            session.pending = dict(path=path, text_name=name, dims=dims, seconds=seconds)
        else:
            text, name = check_text(pasted, "the pasted text"), "the pasted text"
            session.pending = dict(text=text, text_name=name, dims=dims, seconds=seconds)
        check_length(text, name, dims[3])
        session.state = "waiting"
        return f"Waiting for a free training slot ({name}, {len(text):,} characters)…"

    async def train_page(self, request: gr.Request):
        """The Train button, after `prepare`: yields the page's updates (curve, progress, samples, then the
        download, the model choice and the facts)."""
        session = self.sessions.get(request, create=True)
        if session.state != "waiting" or session.pending is None:  # Stop was pressed while it waited
            session.state, session.pending = "idle", None
            yield gr.skip(), "Training cancelled before it started.", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        pending, session.pending = session.pending, None
        if "path" in pending:
            try:
                pending["text"], _ = await asyncio.to_thread(read_upload, pending.pop("path"))
            except (BadInput, OSError) as err:  # the upload is gone from the server's cache (a very long wait)
                session.state = "idle"
                raise BadInput(f"Cannot read the text any more ({one_line(err)}); choose it again") from None
        async for progress, ready in self._run(session, max_iters=0, **pending):
            if ready is None:
                yield loss_frame(progress), progress_line(progress), samples_markdown(progress), *[gr.skip()] * 4
            else:
                yield (loss_frame(progress), progress_line(progress), samples_markdown(progress),
                       gr.DownloadButton(value=str(session.zip_path), visible=True),
                       gr.Radio(value="trained", visible=True), ready.facts_markdown(), gr.Group(visible=True))

    def release(self, request: gr.Request):
        """The training step failed (refused input, queue full...): the tab may train again."""
        session = self.sessions.get(request)
        if session is not None and session.job is None:
            session.state, session.pending = "idle", None

    # -- the API: /train(text, model_size, seconds, max_iters)

    async def train_api(self, text: str, model_size: str = DEFAULT_SIZE, seconds: float = TRAIN_SECONDS,
                        max_iters: int = 0, request: gr.Request = None) -> AsyncIterator[dict]:
        """Train a new model on `text` for this client session; streams progress as dicts (see the docstring of
        app.py). `max_iters` 0 is the cpu preset's 2400 steps; the time budget ends a run sooner."""
        session = self.sessions.get(request, create=True)
        if session.state != "idle":
            raise BadInput("This session is already training: one training at a time. Call /stop_training first.")
        dims = parse_size(model_size)
        seconds = check_seconds(seconds, self.max_seconds)
        text = check_text(text, "the text")
        try:
            max_iters = int(max_iters)
        except (TypeError, ValueError):
            raise BadInput(f"max_iters must be an integer, got {max_iters!r}") from None
        if max_iters < 0:
            raise BadInput(f"max_iters must be 0 (the preset's) or more, got {max_iters}")
        async for progress, _ in self._run(session, text, "the text", dims, seconds, max_iters):
            yield progress.as_dict()

    # -- the training stream shared by both

    async def _run(self, session: Session, text: str, text_name: str, dims, seconds: float, max_iters: int):
        """Yields (progress, None) about once a second, then (progress, the new model) when it is ready."""
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=self.root)) / _folder_name(text_name)
        job = TrainingJob(text, text_name, dims, seconds, max_iters, folder)
        del text
        session.job, session.state = job, "training"
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(event):  # from the worker thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the event loop is gone (server shutting down)
                job.stop()

        finished = False
        try:
            job.start(emit)
            yield job.progress, None
            while True:
                try:  # wake at least once a second, so elapsed and time left move even during a long evaluation
                    event = await asyncio.wait_for(events.get(), TRAIN_UPDATE_INTERVAL)
                except asyncio.TimeoutError:
                    event = None
                batch = [event] if event is not None else []
                while not events.empty():
                    batch.append(events.get_nowait())
                for item in batch:
                    if item is _DONE:
                        break
                    if item[0] == "error":
                        raise item[1]
                    job.apply(item)
                if any(item is _DONE for item in batch):
                    break
                if event is None and job.progress.status == "training" and job.progress.step:
                    job.progress.elapsed_s += TRAIN_UPDATE_INTERVAL  # between reports: the clock still runs
                yield job.progress, None
            if job.abandoned:  # the tab closed meanwhile: its folder is being deleted, nothing to adopt
                return
            ready = await asyncio.to_thread(self._adopt, session, job)
            finished = True
            yield job.progress, ready
        finally:
            if session.job is job:
                session.job, session.state = None, "idle"
            if not finished:  # error, or the stream was closed (tab gone, client cancelled): nothing to keep
                job.abandon()

    def _adopt(self, session: Session, job: TrainingJob) -> TinyGPTDemo:
        """Load the saved folder (exactly what Download gives) as this session's model, and zip it."""
        p = job.progress
        label = f"trained in this tab on {p.text_name} ({p.characters:,} characters)"
        try:
            ready = TinyGPTDemo(load_model(job.folder, label=label))
        except ModelError as err:
            raise gr.Error(f"The trained model could not be loaded back: {err}") from None
        zip_path = Path(shutil.make_archive(str(job.folder), "zip", root_dir=job.folder.parent,
                                            base_dir=job.folder.name))
        session.drop_model()
        session.trained, session.folder, session.zip_path, session.use_trained = ready, job.folder, zip_path, True
        self.sessions.keep_model(session)
        return ready

    # -- Stop, download, push

    def stop(self, request: gr.Request) -> str:
        """Stop: the answer goes to the progress line (and a toast, as the next update replaces that line)."""
        session = self.sessions.get(request)
        state = session.state if session is not None else "idle"
        if state == "waiting":
            session.state, session.pending = "idle", None
            message = "Stopped before it started: your place in the queue is given up."
        elif state == "stopping":
            message = "Already stopping: the model is being saved with what it has learnt so far."
        elif state == "training" and session.job is not None:
            session.state = "stopping"
            session.job.stop()
            message = "Stopping: the model keeps what it has learnt so far and is being saved…"
        else:
            message = "Nothing is training in this tab."
        gr.Info(message)
        return message

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
        repo_id = (repo_id or "").strip()
        if not repo_id:
            raise BadInput("Give a repo id to push to, e.g. your-name/tiny-shakespeare. Your model is still here to "
                           "download.")
        # Only the visitor's own token: never the server's (HF_TOKEN / hf auth login), which would let anyone
        # write to the server owner's account.
        token = (token or "").strip() or getattr(oauth_token, "token", None)
        if not token:
            how = "sign in with the button, or paste" if self.hub_login else "paste"
            raise BadInput(f"No Hugging Face token: {how} a token with write access "
                           "(https://huggingface.co/settings/tokens). Your model is still here to download.")
        try:
            result = push_model(session.folder, repo_id, token=token)
        except (HubError, ValueError) as err:
            raise BadInput(f"Push failed: {one_line(err)}. Your model is still here to download.") from None
        return f"Pushed to [{result.repo_id}]({result.tree_url}) (commit {result.commit[:8]})."

    # -- the model choice

    def model_for(self, request: gr.Request | None, served: TinyGPTDemo) -> TinyGPTDemo:
        """The model Generate and See inside use for this request: the session's trained model where it has one and
        chose it, else the served model."""
        session = self.sessions.get(request)
        if session is not None and session.use_trained:
            if session.trained is not None:
                return session.trained
            gr.Warning("Your trained model was dropped (the server keeps only the most recent ones); "
                       "using the served model.")
        return served

    def choose(self, choice: str, request: gr.Request, served: TinyGPTDemo):
        session = self.sessions.get(request)
        if choice == "trained":
            if session is None or session.trained is None:
                raise BadInput("This session has no trained model (any more): train one in the Train tab")
            session.use_trained = True
            return session.trained.facts_markdown()
        if session is not None:
            session.use_trained = False
        return served.facts_markdown()


def _slug(text_name: str) -> str:
    name = Path(text_name).stem.lower().removeprefix("the ")
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40] or "text"


def _folder_name(text_name: str) -> str:
    return f"tinygpt-{_slug(text_name)}"


def loss_frame(progress: TrainProgress):
    """The chart's data, or gr.skip() until the first evaluation (at step 0): the chart learns its series from its
    first data, so that has all three (the running train loss starts from the evaluated one)."""
    import pandas as pd

    if not progress.evaluations:
        return gr.skip()
    first = progress.evaluations[0]
    rows = [(first["step"], first["train_loss"], "train (running)")]
    rows += [(s, loss, "train (running)") for s, loss in progress.running if s > first["step"]]
    for e in progress.evaluations:
        rows.append((e["step"], e["train_loss"], "train"))
        rows.append((e["step"], e["val_loss"], "val"))
    # Typed even when empty: the chart's axes are numbers from the first update on.
    return pd.DataFrame(rows, columns=["step", "loss", "series"]).astype({"step": "int64", "loss": "float64"})


def progress_line(p: TrainProgress) -> str:
    steps = f"step {p.step:,} / {p.max_iters:,}" if p.max_iters else "starting…"
    parts = [steps, f"{p.elapsed_s:.0f} s elapsed"]
    if p.done:
        ends = {"finished": "finished: all steps done", "stopped": "stopped: kept what it learnt",
                "time_limit": "time budget used up"}
        parts.append(ends[p.status])
    else:
        left = p.time_left()
        parts.append(f"about {left:.0f} s left")
        if p.status == "stopping":
            parts.append("stopping…")
    if p.evaluations:
        parts.append(f"val loss {p.evaluations[-1]['val_loss']:.3f}")
    line = " · ".join(x for x in parts if x)
    if p.done:
        line += ("  \nThis tab's Generate and See inside now use this model (switch back with **Model** at the "
                 "top). Download it or push it to the Hub below.")
    return line


def samples_markdown(p: TrainProgress) -> str:
    if not p.evaluations:
        return "*Samples appear here after each evaluation, newest first.*"
    blocks = []
    for e in reversed(p.evaluations):
        sample = e.get("sample") or ""
        fence = code_fence(sample)
        blocks.append(f"**step {e['step']:,} · val {e['val_loss']:.3f}**\n\n{fence}text\n{sample}\n{fence}")
    return "\n\n".join(blocks)


def hub_login_available() -> bool:
    """The Hub's "Sign in" button works on a Space whose README says `hf_oauth: true` (it then has OAUTH_CLIENT_ID)
    and has gradio's OAuth extras (`gradio[oauth]` in requirements.txt)."""
    import importlib.util

    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID")
                and importlib.util.find_spec("itsdangerous") and importlib.util.find_spec("authlib"))
