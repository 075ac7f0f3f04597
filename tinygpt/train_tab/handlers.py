"""The Train tab's handlers: what Train, Stop, Download and Push do, on the page and through the API.

    tab = TrainTab(Sessions(), max_seconds=300, bundled_text="data/tinyshakespeare.txt", served=ServedModel.of(...))
    outputs = TrainOutputs(train_button=..., progress=..., ...)       # app.py makes the components and owns them
    train_btn.click(train, inputs, outputs.components(), validator=tab.check_page_inputs)  # train: tab.train_page
    gr.api(tab.train_api, api_name="train")                                                # streams dicts

They join the rooms beside this one: what a request may be (`request`), the line (`line`), a training on the
engine (`job`) and what the page shows (`view`). The page gets `{component: gr.update(...)}` dicts keyed by
`outputs`, so nothing is matched by position; /train gets `Job.as_dict()`. A refusal stays on the page until the
next press: beside its field (gradio's validator), or in the progress line; never only in a toast that goes away.
Which model each session uses is `tinygpt.sessions`' business.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

from ..common import one_line
from ..demo import BadInput, ModelError, ThreadStream, TinyGPTDemo, check_string, load_model
from ..sessions import Session, Sessions
from . import view
from .job import UPDATE_INTERVAL, Job, folder_name
from .line import TRAIN_CONCURRENCY, WaitingLine
from .request import (
    DEFAULT_SIZE, PAGE_FIELDS, SCRATCH, TRAIN_MAX_SECONDS, TRAIN_SECONDS, RequestRules, RunRequest, ServedModel,
)

LINE_POLL = 0.25  # how often a waiting training looks whether a slot is free


@dataclass(frozen=True, eq=False)
class TrainOutputs:
    """The components a training updates. app.py makes them (it alone owns the page)."""

    train_button: object
    stop_button: object
    progress: object
    loss_help: object
    curve: object
    samples: object
    result: object  # the group with Download and Push, shown once there is a model
    download: object
    model_choice: object
    facts: object

    def components(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]


class TrainTab:
    """The Train tab's server side. `bundled_text` is the file offered as the default text (app.py's
    data/tinyshakespeare.txt), None for none; `served` the model a training may fine-tune (the one the server
    serves), None to offer only from scratch."""

    def __init__(self, sessions: Sessions, max_seconds: float = TRAIN_MAX_SECONDS, hub_login: bool = False,
                 bundled_text: str | os.PathLike | None = None, concurrency: int = TRAIN_CONCURRENCY,
                 served: ServedModel | None = None):
        self.sessions = sessions
        self.rules = RequestRules(max_seconds, Path(bundled_text) if bundled_text else None, served)
        self.hub_login = hub_login  # the Hub's "Sign in" button (a Space with OAuth)
        self.line = WaitingLine(concurrency)
        self.root = Path(tempfile.mkdtemp(prefix="tinygpt-demo-"))  # every session's runs; removed at exit

    @property
    def served(self) -> ServedModel | None:
        return self.rules.served

    @property
    def max_seconds(self) -> float:
        return self.rules.max_seconds

    @property
    def has_bundled_text(self) -> bool:
        return self.rules.has_bundled_text

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the page's Train button

    def check_page_inputs(self, source, pasted, upload, size, seconds, start_from) -> list:
        """The Train button's validator: gradio runs it before the training starts (the same inputs, PAGE_FIELDS)
        and shows each problem beside its field until the next press; with one, the training does not start."""
        _, problems = self.rules.check_page(source, pasted, upload, size, seconds, start_from)
        return [gr.validate(name not in problems, problems.get(name, "")) for name in PAGE_FIELDS]

    async def train_page(self, outputs: TrainOutputs, source, pasted, upload, size, seconds, start_from,
                         request: gr.Request) -> AsyncIterator[dict]:
        """The Train button: checks the request (again: the validator's result does not travel), waits in line,
        trains; yields the page's updates. What goes wrong ends up in the progress line."""
        job = None
        try:
            session = self._idle_session(request)
            run, problems = await asyncio.to_thread(self.rules.check_page, source, pasted, upload, size, seconds,
                                                    start_from)
            if problems:  # the validator said so beside each field already
                raise BadInput(" ".join(problems.values()))
            stream = self._run(session, run)
            del run
            async for job, ready in stream:
                yield self._page_updates(outputs, job, ready)
        except gr.Error as err:
            line = view.progress_line(job, error=err.message) if job is not None else f"**{err.message}**"
            yield {outputs.progress: line, outputs.train_button: gr.update(interactive=True),
                   outputs.stop_button: gr.update(interactive=False)}

    @staticmethod
    def _page_updates(outputs: TrainOutputs, job: Job, ready: TinyGPTDemo | None) -> dict:
        updates = {
            outputs.progress: view.progress_line(job), outputs.loss_help: view.loss_help(job),
            outputs.curve: view.loss_chart(job), outputs.samples: view.samples_html(job),
            outputs.train_button: gr.update(interactive=job.done),
            outputs.stop_button: gr.update(interactive=not job.done),
        }
        if ready is not None:
            updates.update({
                outputs.result: gr.update(visible=True),
                outputs.download: gr.update(value=f"{job.folder}.zip", visible=True),  # what _adopt zipped
                outputs.model_choice: gr.update(value="trained", visible=True),
                outputs.facts: ready.facts_markdown(),
            })
        return updates

    # -- the API: /train(text, model_size, seconds, max_iters, start_from)

    async def train_api(self, text: str, model_size: str = DEFAULT_SIZE, seconds: float = TRAIN_SECONDS,
                        max_iters: int = 0, start_from: str = SCRATCH,
                        request: gr.Request = None) -> AsyncIterator[dict]:
        """Train a new model on `text` for this client session; streams progress as dicts (see the docstring of
        app.py). `max_iters` 0 is the cpu preset's 2400 steps; the time budget ends a run sooner. `start_from`
        "served" fine-tunes the served model (its size wins: `model_size` is ignored)."""
        session = self._idle_session(request)
        run = self.rules.check_api(text, model_size, seconds, max_iters, start_from)
        del text
        stream = self._run(session, run)
        del run
        async for job, _ in stream:
            yield job.as_dict()

    def _idle_session(self, request) -> Session:
        session = self.sessions.get(request, create=True)
        job = session.job
        if job is not None:
            what = {"waiting": "is already waiting in line", "stopping": "is saving a stopped training"}.get(
                job.status, "is already training")
            raise BadInput(f"This tab {what}: one training at a time. Press Stop to end it, or wait for it.")
        return session

    # -- the training stream shared by both

    async def _run(self, session: Session, request: RunRequest):
        """Yields (job, None) while it waits and trains (about once a second), then (job, the new model)."""
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=self.root)) / folder_name(request.text.name)
        job = Job(request, folder)
        del request  # the job holds the text only until the engine does
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
                    yield job, None
                    return
                job.place, job.wait_s = self.line.place(job)
                if shown is None or time.monotonic() - shown >= UPDATE_INTERVAL:
                    shown = time.monotonic()
                    yield job, None
                await asyncio.sleep(LINE_POLL)
            if job.cancelled:  # Stop came as the line let it go
                yield job, None
                return
            job.started, job.place, job.wait_s = True, 0, 0.0
            stream = ThreadStream(job.work, name="tinygpt-train").start()
            yield job, None
            # Wake at least once a second, so the clock and the time left move even during a long evaluation.
            async for items in stream.batches(wake_every=UPDATE_INTERVAL):
                for item in items:
                    job.apply(item)
                yield job, None
            if job.abandoned:  # the tab closed meanwhile: its folder is being deleted, nothing to adopt
                return
            ready = await asyncio.to_thread(self._adopt, session, job)
            job.ended = finished = True
            yield job, ready
        finally:
            if stream is not None:
                await stream.aclose()
            self.line.leave(job)
            if session.job is job:
                session.job = None
            if not finished:  # error, cancelled, or the stream was closed (tab gone, client cancelled)
                job.abandon()

    def _adopt(self, session: Session, job: Job) -> TinyGPTDemo:
        """Load the saved folder (exactly what Download gives) as this session's model, and zip it."""
        text, base = job.request.text, job.request.base
        how = f"fine-tuned in this tab from {base.label}" if base else "trained in this tab"
        label = f"{how} on {text.name} ({text.characters:,} characters)"
        try:
            ready = TinyGPTDemo(load_model(job.folder, label=label), prompts=text.prompts)
        except ModelError as err:
            raise gr.Error(f"The trained model could not be loaded back: {job.no_paths(err)}.") from None
        zip_path = Path(shutil.make_archive(str(job.folder), "zip", root_dir=job.folder.parent,
                                            base_dir=job.folder.name))
        self.sessions.adopt(session, ready, job.folder, zip_path)
        return ready

    # -- Stop, download, push

    def stop(self, request: gr.Request) -> str:
        """/stop_training: leaves the line, or stops the training (which is then evaluated and saved)."""
        job = self._job(request)
        return job.stop() if job is not None else "Nothing is training in this tab."

    def stop_page(self, request: gr.Request):
        """The page's Stop button: what `stop` says, in the progress line (no toast: on a phone it would cover the
        page), which the training's stream then updates. With nothing to stop, the line keeps its result."""
        job = self._job(request)
        return job.stop() if job is not None else gr.skip()

    def _job(self, request) -> Job | None:
        session = self.sessions.get(request)
        return session.job if session is not None else None

    def download(self, request: gr.Request) -> str:
        session = self.sessions.get(request)
        if session is None or session.zip_path is None:
            raise BadInput("No trained model in this session yet: train one first (the Train tab)")
        return str(session.zip_path)

    def push(self, repo_id: str, token: str, request: gr.Request, oauth_token=None) -> str:
        from tinygpt.hub import HubError
        from tinygpt.model_repo import push_model

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
            raise BadInput(f"Push failed: {page_words(one_line(err), session.folder)}. Your model is still here to "
                           "download.") from None
        return f"Pushed to [{result.repo_id}]({result.tree_url}) (commit {result.commit[:8]})."


def page_words(message: str, folder: Path) -> str:
    """The Hub code's message for a visitor: it speaks of the server's folder (a temporary path they never saw)
    and of the command line's login; the page ends with its own "your model is still here"."""
    for path in (folder, folder.parent):
        message = re.sub(rf"[;,]? the local folder {re.escape(str(path))} is unchanged", "", message)
        message = message.replace(str(path), "your model")
    message = re.sub(r"log in with `hf auth login` or set HF_TOKEN to", "paste", message)
    return message.rstrip(".")


def hub_login_available() -> bool:
    """The Hub's "Sign in" button works on a Space whose README says `hf_oauth: true` (it then has OAUTH_CLIENT_ID)
    and has gradio's OAuth extras (`gradio[oauth]` in requirements.txt)."""
    import importlib.util

    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID")
                and importlib.util.find_spec("itsdangerous") and importlib.util.find_spec("authlib"))
