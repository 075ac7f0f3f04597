"""Which model each browser tab uses, for every tab of the demo: the served one, or the one it trained.

    sessions = Sessions(max_models=16)
    model = sessions.model_for(request, served)    # Generate and See inside ask this on every request
    sessions.adopt(request, trained_model, folder, zip_path)   # the Train tab, when a training ends

A session is one gradio session (one browser tab, or one gradio_client `Client`). State lives here rather than in
gr.State: a closed tab's gr.State lives on for an hour, and memory must stay bounded. A session is dropped when
its tab closes (demo.unload), after an hour unused, or, beyond `max_models` trained models, least recently used
first. Needs gradio only for the page's messages, so `import tinygpt` never imports it.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from .demo import BadInput, TinyGPTDemo

MAX_TRAINED_MODELS = 16  # sessions whose trained model is kept; beyond that the least recently used is dropped
SESSION_IDLE_SECONDS = 3600  # a session unused this long loses its trained model (a closed tab loses it at once)


@dataclass
class Session:
    """What one browser tab owns: the model it trained (and its files), its model choice, and its training."""

    trained: TinyGPTDemo | None = None  # the last model this session trained
    folder: Path | None = None  # that model's folder (what train.py writes), and `zip_path` the same zipped
    zip_path: Path | None = None
    use_trained: bool = False  # the page's model choice: Generate and See inside use `trained`
    job: object | None = None  # the training this session has waiting or running (tinygpt.train_tab.job.Job)
    last_used: float = field(default_factory=time.monotonic)

    def drop_model(self) -> None:
        self.trained, self.use_trained = None, False
        if self.folder is not None:
            shutil.rmtree(self.folder.parent, ignore_errors=True)  # the run's folder: model + zip
        self.folder = self.zip_path = None

    def release(self) -> None:
        """The tab is gone: end its training (waiting or running) and delete its model."""
        if self.job is not None:
            self.job.abandon()
        self.drop_model()


class Sessions:
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
            session.release()

    def adopt(self, session: Session, model: TinyGPTDemo, folder: Path, zip_path: Path) -> None:
        """`session` trained `model` (saved in `folder`, zipped in `zip_path`): from now on its Generate and See
        inside use it; its previous model and the oldest others' beyond `max_models` are dropped."""
        session.drop_model()
        session.trained, session.folder, session.zip_path, session.use_trained = model, folder, zip_path, True
        with self._lock:
            holders = sorted((s for s in self._sessions.values() if s.trained is not None and s is not session),
                             key=lambda s: s.last_used)
            for old in holders[: max(0, len(holders) + 1 - self.max_models)]:
                old.drop_model()

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if now - s.last_used > self.idle_seconds and s.job is None]:
            self._sessions.pop(key).release()

    def __len__(self) -> int:
        return len(self._sessions)

    # -- the model choice, for every tab

    def model_for(self, request: gr.Request | None, served: TinyGPTDemo) -> TinyGPTDemo:
        """The model Generate and See inside use for this request: the session's trained model where it has one and
        chose it, else the served model."""
        session = self.get(request)
        if session is not None and session.use_trained:
            if session.trained is not None:
                return session.trained
            gr.Warning("Your trained model was dropped (the server keeps only the most recent ones); "
                       "using the served model.")
        return served

    def choose(self, choice: str, request: gr.Request, served: TinyGPTDemo) -> TinyGPTDemo:
        """The page's Model switch: "trained" or "served"; returns the model now in use."""
        session = self.get(request)
        if choice == "trained":
            if session is None or session.trained is None:
                raise BadInput("This tab has no trained model (any more): train one in the Train tab")
            session.use_trained = True
            return session.trained
        if session is not None:
            session.use_trained = False
        return served
