"""The tinygpt demo: watch the blog series' character-level GPT write, look inside it, and train your own.

    python app.py [--model DIR_OR_REPO_ID] [--host H] [--port P] [--share]
                  [--train-max-seconds S] [--train-concurrency N]

`--model` (or the `MODEL_ID` environment variable; the flag wins) is a tinygpt folder made with
`save_pretrained` or a Hub repo id; the default is the bundled `checkpoints/tinyshakespeare` next to this file.

Three tabs: **Generate** streams text, **See inside** shows the next-character probabilities and every attention
head, **Train** trains a new model on your text from scratch in the browser session (the bundled tiny
Shakespeare, pasted text or an uploaded .txt), streaming its loss curve and a sample after every evaluation. When
it ends (or Stop is pressed) that browser session's Generate and See inside use the new model; it can be
downloaded as the folder train.py writes, or pushed to the Hub with the same code as `tinygpt push`.

The served model loads with `trust_remote_code=True`, so serving needs only torch, transformers and gradio plus
the small `tinygpt` helpers beside this file (`tinygpt space` uploads that folder with app.py). Training imports
tinygpt's engine (which needs accelerate) only when someone presses Train.

API (`gradio_client.Client(url)`):
    predict(prompt, max_new_tokens, temperature, top_k, top_p, seed, api_name="/generate")
        -> prompt + continuation. temperature 0 is greedy, top_k 0 and top_p 1 are off. Same inputs and seed give
        the same text whatever else the server is doing: every request samples from its own seeded Generator.
    predict(prompt, api_name="/inspect") -> (top-10 table, attention maps as HTML, what the model sees)
    submit(text, model_size=..., seconds=60, max_iters=0, api_name="/train") -> streams progress dicts
        (status, step, max_iters, elapsed_s, time_left_s, train_loss, evaluations: [{step, train_loss,
        val_loss, elapsed_s, sample}]). Afterwards /generate and /inspect from the same Client use the trained
        model; another Client still gets the served one.
    predict(api_name="/stop_training"), predict(api_name="/download") -> the model folder as a .zip,
    predict(repo_id, token, api_name="/push").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.utils import cached_file
from transformers.utils import logging as hf_logging

from tinygpt.common import CharStreamer, is_local_path, one_line
from tinygpt.tokenization import describe_unknown_characters

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / "checkpoints" / "tinyshakespeare"
BUNDLED_TEXT = HERE / "data" / "tinyshakespeare.txt"  # the Train tab's default text

MAX_NEW_TOKENS = 1000  # server-side cap on characters per request (the slider's maximum)
MAX_PROMPT_CHARS = 2000  # longer prompts are refused; the model only ever sees the last block_size of them
MAX_SEED = 2**32 - 1
CONCURRENCY = 8  # generations running at once; more requests wait in the queue
MAX_QUEUE = 64  # requests waiting beyond that are turned away ("queue full") instead of piling up
TOP_N = 10  # bars in the next-character chart
# Streamed updates per request are at most one per STREAM_INTERVAL seconds (50 a second): each character is sent
# as soon as it exists, but a fast model's characters are bundled instead of costing one message each.
STREAM_INTERVAL = 0.02

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

# Characters that would be invisible as plot labels.
VISIBLE = {"\n": "⏎", " ": "␣", "\t": "⇥", "\r": "\\r"}

# Prompts for a Shakespeare model; only those made of the loaded model's characters are offered.
EXAMPLES = [
    ["ROMEO:\n", 300, 0.8, 0, 1.0, 42],
    ["First Citizen:\n", 300, 1.0, 0, 1.0, 7],
    ["To be, or not to be", 200, 0.0, 0, 1.0, 0],
    ["KING RICHARD III:\nNow is the winter of our discontent\n", 400, 0.7, 20, 0.95, 2024],
]


class BadInput(gr.Error):
    """A request the server refuses: the user sees the message; the server log gets no traceback."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)


class ModelError(Exception):
    """A --model that cannot be served; the message is one line that says what to do."""


def show(char: str) -> str:
    return VISIBLE.get(char, char)


# --------------------------------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    model: torch.nn.Module
    tokenizer: object
    source: str
    facts: dict


def load_model(name_or_path: str | os.PathLike, label: str | None = None) -> Loaded:
    """A tinygpt model + tokenizer from a local folder or a Hub repo id, or a one-line `ModelError`.

    `label` is how the page names the model (default: the repo id, or the folder's name: never a server path).
    """
    name = str(name_or_path)
    local = is_local_path(name)
    if local:
        path = Path(name).expanduser()
        _check_folder(path, name)
        name = str(path)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=True)
    except Exception as err:  # OSError for a missing repo, ValueError for a bad config, ...
        raise ModelError(f"{name}: cannot load its config: {one_line(err)}") from None
    if getattr(config, "model_type", None) != "tinygpt":
        raise ModelError(f"{name}: model_type is {config.model_type!r}, not 'tinygpt'; this demo needs a tinygpt model")
    try:
        model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=True)
    except Exception as err:
        raise ModelError(f"{name}: cannot load the model or its tokenizer: {one_line(err)}") from None
    if len(tokenizer) != config.vocab_size:
        raise ModelError(
            f"{name}: the tokenizer has {len(tokenizer)} characters but vocab_size is {config.vocab_size}; "
            "the model and tokenizer were not saved together"
        )
    label = label or (Path(name).resolve().name if local else name)
    return Loaded(model, tokenizer, name, _facts(model, name, label))


def _check_folder(path: Path, name: str) -> None:
    """Fail early, and plainly, on a folder that is not a tinygpt model (transformers' errors are long)."""
    if not path.exists():
        hint = " (the bundled checkpoint is missing: pass --model or set MODEL_ID)" if path == DEFAULT_MODEL else ""
        raise ModelError(f"{name}: no such folder{hint}")
    if not path.is_dir():
        raise ModelError(f"{name}: is a file; give the model folder (the one with config.json)")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelError(f"{name}: no config.json, so not a saved model folder (make one with save_pretrained or train.py)")
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, UnicodeDecodeError, AttributeError) as err:
        raise ModelError(f"{config_file}: not a valid config ({one_line(err)})") from None
    if model_type != "tinygpt":
        raise ModelError(f"{name}: config.json says model_type={model_type!r}, not a tinygpt model")
    for needed in ("model.safetensors", "tokenizer.json"):
        if not (path / needed).is_file():
            raise ModelError(f"{name}: no {needed}; save the model and its tokenizer together in this folder")


def _facts(model, source: str, label: str) -> dict:
    config = model.config
    facts = {
        "source": label,
        "params": sum(p.numel() for p in model.parameters()),
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "block_size": config.block_size,
        "vocab_size": config.vocab_size,
        "val_loss": None,
        "steps": None,
    }
    state = _optional_file(source, "trainer_state.json")  # written by train.py (and the Train tab), and pushed
    if state:
        try:
            state = json.loads(state)
            val_losses = [e["val_loss"] for e in state.get("log_history", []) if e.get("val_loss") is not None]
            facts["val_loss"] = state.get("best_val_loss", min(val_losses, default=None))
            facts["steps"] = state.get("global_step")
        except (ValueError, TypeError, AttributeError, KeyError):
            pass
    if facts["val_loss"] is None:  # a model pushed without trainer_state.json: the card's YAML carries `val_loss`
        card = _optional_file(source, "README.md") or ""
        header = re.match(r"---\n(.*?)\n---", card, re.DOTALL)
        found = header and re.search(r"^val_loss:\s*([0-9.eE+-]+)\s*$", header.group(1), re.MULTILINE)
        if found:
            facts["val_loss"] = float(found.group(1))
    return facts


def _optional_file(source: str, filename: str) -> str | None:
    """The text of a file in the model folder or repo, or None where there is none (or it cannot be had)."""
    try:
        path = cached_file(source, filename, _raise_exceptions_for_missing_entries=False)
        return Path(path).read_text(encoding="utf-8") if path else None
    except Exception:  # offline, no such file, unreadable: the facts just go without it
        return None


# ------------------------------------------------------------------------------------------------ generation


class SeededSampler(LogitsProcessor):
    """Samples the next character with this request's own `torch.Generator`; generate() then picks it greedily.

    transformers' sampling draws from torch's global RNG, which every request shares: two users seeding it at
    once would get each other's random numbers. Here the warpers (temperature, top-k, top-p, applied in
    transformers' order) shape the distribution, `torch.multinomial(..., generator=)` draws from it, and every
    other character gets -inf, so `generate(do_sample=False)` takes exactly the sampled one. With one request
    at a time this equals `torch.manual_seed(seed); generate(do_sample=True, ...)`.
    """

    def __init__(self, temperature: float, top_k: int, top_p: float, seed: int, device="cpu"):
        self.warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_k > 0:
            self.warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))
        self.generator = torch.Generator(device).manual_seed(seed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = self.warpers(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.multinomial(probs, num_samples=1, generator=self.generator)  # (B, 1)
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)


class StopWhenSet(StoppingCriteria):
    """Ends generation at the next character once `event` is set (Stop pressed, client gone)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


_DONE = object()


class TinyGPTDemo:
    """One model behind the page (the served one, or a session's trained one): input checks, streaming
    generation and the see-inside views."""

    def __init__(self, loaded: Loaded):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.facts = loaded.facts
        self.device = next(self.model.parameters()).device
        vocab = self.tokenizer.get_vocab()
        self.itos = [None] * len(vocab)
        for char, i in vocab.items():
            self.itos[i] = char
        self.stoi = vocab
        self.block_size = self.model.config.block_size

    # -- input checks: raised as BadInput (a gr.Error), so the user sees the message and the server carries on

    def encode(self, prompt: str) -> torch.Tensor:
        """(1, T) ids of the prompt; an empty prompt starts from id 0, the first vocabulary character."""
        if prompt is None:
            prompt = ""
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BadInput(
                f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS} "
                f"(the model only reads the last {self.block_size} anyway)."
            )
        self.check_characters(prompt)
        ids = [self.stoi[c] for c in prompt] or [0]  # the seed's `torch.zeros((1, 1))`
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    def check_characters(self, text: str) -> None:
        """BadInput naming the characters the model has never seen, in the tokenizer's own words where it has them
        (CharTokenizer, shipped as remote code with every tinygpt model)."""
        check = getattr(self.tokenizer, "check_characters", None)
        if check is not None:
            try:
                check(text)
            except ValueError as err:
                raise BadInput(str(err)) from None
            return
        unknown = set(text) - self.stoi.keys()
        if unknown:
            raise BadInput(describe_unknown_characters(unknown, self.stoi.keys()))

    @staticmethod
    def settings(max_new_tokens, temperature, top_k, top_p, seed) -> tuple[int, float, int, float, int]:
        try:
            max_new_tokens, top_k, seed = int(max_new_tokens), int(top_k), int(seed)
            temperature, top_p = float(temperature), float(top_p)
        except (TypeError, ValueError):
            raise BadInput("max_new_tokens, top_k and seed must be integers; temperature and top_p numbers") from None
        if max_new_tokens < 1:
            raise BadInput(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        max_new_tokens = min(max_new_tokens, MAX_NEW_TOKENS)  # the server's cap
        if not temperature >= 0:
            raise BadInput(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        if top_k < 0:
            raise BadInput(f"top_k must be >= 0 (0 = off), got {top_k}")
        if not 0 < top_p <= 1:
            raise BadInput(f"top_p must be in (0, 1] (1 = off), got {top_p}")
        if not 0 <= seed <= MAX_SEED:
            raise BadInput(f"seed must be between 0 and {MAX_SEED}, got {seed}")
        return max_new_tokens, temperature, top_k, top_p, seed

    # -- generation

    async def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        """Yields prompt + the continuation so far, growing as the worker thread produces characters."""
        input_ids = self.encode(prompt)
        prompt = prompt or ""
        max_new_tokens, temperature, top_k, top_p, seed = self.settings(max_new_tokens, temperature, top_k, top_p, seed)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def emit(item):  # called from the worker thread
            if not stop.is_set():
                try:
                    loop.call_soon_threadsafe(chunks.put_nowait, item)
                except RuntimeError:  # the event loop is gone: the server is shutting down
                    stop.set()

        kwargs = {
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "stopping_criteria": StoppingCriteriaList([StopWhenSet(stop)]),
            "streamer": CharStreamer(self.decode, emit),
        }
        if temperature > 0:
            kwargs["logits_processor"] = LogitsProcessorList([SeededSampler(temperature, top_k, top_p, seed, self.device)])
        worker = threading.Thread(target=self._work, args=(input_ids, kwargs, emit), name="tinygpt-generate", daemon=True)
        worker.start()
        text = prompt
        try:
            yield text
            last = 0.0  # the first character goes out the moment it exists
            while True:
                parts = [await chunks.get()]
                wait = last + STREAM_INTERVAL - loop.time()
                if wait > 0:  # at most one update per interval: what arrives meanwhile goes out together
                    await asyncio.sleep(wait)
                while not chunks.empty():
                    parts.append(chunks.get_nowait())
                last = loop.time()
                done = any(p is _DONE for p in parts)
                errors = [p for p in parts if isinstance(p, BaseException)]
                if errors:
                    raise gr.Error(f"generation failed: {one_line(errors[0])}")
                new = "".join(p for p in parts if isinstance(p, str))
                if new:
                    text += new
                    yield text
                if done:
                    return
        finally:  # finished, cancelled by Stop, or the client went away: the worker stops at its next character
            stop.set()

    def decode(self, ids: list[int]) -> str:
        return "".join(self.itos[i] for i in ids)

    def _work(self, input_ids, kwargs, emit) -> None:
        try:
            with torch.inference_mode():
                self.model.generate(input_ids, **kwargs)
        except Exception as err:  # reported to the client by generate()
            emit(err)
        finally:
            emit(_DONE)

    def warm_up(self) -> None:
        """One short generation and one look inside, so the first visitor does not pay for lazy imports."""
        input_ids = self.encode("")
        sampler = LogitsProcessorList([SeededSampler(1.0, 5, 0.9, 0, self.device)])
        with torch.inference_mode():
            self.model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=2, do_sample=False,
                logits_processor=sampler, stopping_criteria=StoppingCriteriaList([StopWhenSet(threading.Event())]),
                streamer=CharStreamer(self.decode, lambda text: None),
            )
        self.inspect(self.itos[0] * 2)

    # -- see inside

    def inspect(self, prompt):
        """(top-10 next-character table, attention maps as HTML, what the model sees) for the prompt."""
        input_ids = self.encode(prompt)[:, -self.block_size :]  # a forward pass sees at most block_size characters
        with torch.inference_mode():
            out = self.model(input_ids, output_attentions=True, use_cache=False)
        probs = torch.softmax(out.logits[0, -1].float(), dim=-1)
        top = torch.topk(probs, min(TOP_N, probs.numel()))
        chars = [self.itos[i] for i in input_ids[0].tolist()]
        table = _table(
            [show(self.itos[i]) for i in top.indices.tolist()], [round(p, 4) for p in top.values.tolist()]
        )
        if prompt:
            maps = attention_html([a[0].float().cpu() for a in out.attentions], chars)  # per layer: (n_head, T, T)
        else:
            maps = EMPTY_PROMPT_MAPS
        return table, maps, self._context_note(prompt or "", chars)

    def _context_note(self, prompt: str, chars: list[str]) -> str:
        seen = "".join(chars)
        if not prompt:
            where = "The prompt is empty, so the model starts from its first vocabulary character"
        elif len(prompt) > len(chars):
            where = f"The prompt has {len(prompt)} characters; the model sees only the last {len(chars)}"
        else:
            where = f"The model sees all {len(chars)} characters of the prompt"
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", seen)), default=0))
        return f"{where} (block_size = {self.block_size}):\n\n{fence}text\n{seen}\n{fence}"

    def facts_markdown(self) -> str:
        f = self.facts
        loss = "not recorded"
        if f["val_loss"] is not None:
            loss = f"{f['val_loss']:.4f}" + (f" after {f['steps']:,} steps" if f["steps"] else "")
        return "\n".join(
            [
                f"**Model** `{f['source']}`",
                "",
                "| parameters | layers | heads | n_embd | block size | vocabulary | val loss |",
                "|---|---|---|---|---|---|---|",
                f"| {f['params']:,} | {f['n_layer']} | {f['n_head']} | {f['n_embd']} | {f['block_size']} "
                f"| {f['vocab_size']} characters | {loss} |",
            ]
        )


def _table(chars: list[str], probs: list[float]):
    import pandas as pd  # installed with gradio, which needs it for its plots

    return pd.DataFrame({"next character": chars, "probability": probs})


EMPTY_PROMPT_MAPS = (
    '<p class="attention-note">Type a prompt to see the attention maps. With an empty prompt the model sees a '
    "single character (the first of its vocabulary), which can only look at itself.</p>"
)
# Pixel sizes of one attention map as rendered; the page shows them in a grid of columns at least 280 px wide
# (4 to a row at 1280 px, one per row on a phone), so labels drawn at 15 px are never shown below 10 px.
MAP_PX, MAP_DPI, LABEL_PT = 420, 100, 11


def attention_html(attentions: list[torch.Tensor], chars: list[str]) -> str:
    """Every attention head as its own heat map, grouped by layer: row = the character looking, column = the one
    looked at. One small image per head (rather than one wide figure) lets the browser wrap them: four to a row
    on a laptop, one per row on a phone, where each is still full size."""
    parts = ['<div class="attention-legend"><span>0</span><span class="attention-scale"></span><span>1 = all of '
             'its attention</span><span class="attention-future"></span><span>the future (masked)</span></div>']
    for layer, weights in enumerate(attentions):
        images = "".join(
            f'<figure><img alt="layer {layer + 1}, head {head + 1}" src="data:image/png;base64,{_head_png(w, chars)}">'
            f"<figcaption>layer {layer + 1} · head {head + 1}</figcaption></figure>"
            for head, w in enumerate(weights)
        )
        parts.append(f'<div class="attention-layer"><h4>Layer {layer + 1}</h4><div class="attention-grid">{images}'
                     "</div></div>")
    return "".join(parts)


def _head_png(weights: torch.Tensor, chars: list[str]) -> str:
    """One head's (T, T) weights as a base64 PNG, the characters on both axes.

    The figure object API (no pyplot state shared between threads) and a fixed layout: matplotlib's layout
    engines cost more than the drawing.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    cmap = colormaps["Blues"].with_extremes(bad="#f1f1f4")  # the masked future: light grey, not "zero"
    T = len(chars)
    label_px = LABEL_PT * MAP_DPI / 72 * 1.15  # one label's height plus a little air
    left = bottom = 0.13
    every = max(1, -(-int(T * label_px) // int(MAP_PX * (1 - left - 0.03))))  # no overlapping labels
    ticks = list(range(0, T, every))
    labels = [show(chars[t]) for t in ticks]
    size = MAP_PX / MAP_DPI
    fig = Figure(figsize=(size, size), dpi=MAP_DPI)
    ax = fig.add_axes((left, bottom, 1 - left - 0.03, 1 - bottom - 0.03))
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # causal mask: these weights are always 0
    ax.imshow(weights.masked_fill(future, float("nan")).numpy(), cmap=cmap, vmin=0.0, vmax=1.0,
              interpolation="nearest", aspect="auto")
    ax.tick_params(length=0, pad=2, labelsize=LABEL_PT)
    ax.set_xticks(ticks, labels, family="monospace")
    ax.set_yticks(ticks, labels, family="monospace")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


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
    from tinygpt.data import TRAIN_FRACTION

    need = block_size + 1
    n = len(text)
    if min(int(TRAIN_FRACTION * n), n - int(TRAIN_FRACTION * n)) < need:
        shortest = int(need / (1 - TRAIN_FRACTION)) + 1
        raise BadInput(f"Too short to train on: {name} has {n:,} characters, and a context of {block_size} needs at "
                       f"least {shortest:,}. The last 10 % is held out to measure the loss and must hold {need} "
                       "characters (context + 1). Give a longer text, or pick a model with a shorter context.")


def read_upload(path: str | os.PathLike) -> tuple[str, str]:
    """(text, file name) of an uploaded .txt, or a BadInput that says what is wrong with it."""
    from tinygpt.corpus import CorpusError, read_corpus

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


def _engine():
    """tinygpt's training engine, imported on first use (it needs accelerate; serving does not)."""
    try:
        from tinygpt.engine import Trainer, TrainerCallback
        from tinygpt.settings import TrainingError, TrainingSettings
    except ImportError as err:
        raise BadInput(f"Training is not available on this server: {one_line(err)} (pip install tinygpt)") from None
    return Trainer, TrainerCallback, TrainingSettings, TrainingError


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
            Trainer, TrainerCallback, TrainingSettings, TrainingError = _engine()
            n_layer, n_head, n_embd, block_size = self.dims
            overrides = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                             max_seconds=self.seconds, threads=0,  # threads 0: keep the server's --threads
                             eval_interval=eval_interval_for(self.dims))
            if self.max_iters:
                overrides.update(max_iters=self.max_iters, lr_decay_iters=max(self.max_iters, 51),
                                 eval_interval=min(overrides["eval_interval"], max(1, self.max_iters // 4)))
            try:
                settings = TrainingSettings.from_preset("cpu", **overrides)
            except (TrainingError, ValueError) as err:
                raise BadInput(f"These settings cannot train: {one_line(err)}") from None
            bridge = _bridge(TrainerCallback)(emit)
            check_length(self.text, self.progress.text_name, block_size)
            try:
                trainer = Trainer(settings, text=self.text, out_dir=self.folder, callbacks=[bridge],
                                  data_name=_slug(self.progress.text_name))
            except (TrainingError, ValueError) as err:  # empty text, shorter than the context, ...
                raise BadInput(f"Cannot train on {self.progress.text_name}: {one_line(err)}") from None
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


def _bridge(TrainerCallback):
    """A TrainerCallback that hands the engine's events to `emit`: every evaluation, and the running train loss
    about once a second (the mean over the steps since the last point)."""

    class Bridge(TrainerCallback):
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

    return Bridge


class Trainings:
    """The Train tab's server side: text sources, the training stream, download and push."""

    def __init__(self, sessions: Sessions, max_seconds: float = TRAIN_MAX_SECONDS, hub_login: bool = False):
        self.sessions = sessions
        self.max_seconds = max_seconds
        self.hub_login = hub_login  # the Hub's "Sign in" button (a Space with OAuth)
        self.root = Path(tempfile.mkdtemp(prefix="tinygpt-demo-"))  # every session's runs; removed at exit

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

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
            if source == "bundled" and not BUNDLED_TEXT.is_file():
                raise BadInput("The bundled tiny Shakespeare is not on this server; paste or upload a text instead")
            if source == "upload" and not upload:
                raise BadInput("No file uploaded yet: choose a .txt file (UTF-8), or pick another text source")
            path = BUNDLED_TEXT if source == "bundled" else Path(upload)
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
        _name_folder_by_itself(job.folder)
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


def _name_folder_by_itself(folder: Path) -> None:
    """The engine names a run by its output folder, here a path in the server's temporary directory; the folder
    that is downloaded (and pushed) names itself instead: `tinygpt-<text>` in its card's load snippet and in
    trainer_state.json's reproduce command (`--out-dir`)."""
    from tinygpt.card import write_model_card

    state_file = folder / "trainer_state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    if isinstance(state.get("command"), str):
        state["command"] = state["command"].replace(str(folder), folder.name)
        state_file.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_model_card(folder, repo_id=folder.name)


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
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", sample)), default=0))
        blocks.append(f"**step {e['step']:,} · val {e['val_loss']:.3f}**\n\n{fence}text\n{sample}\n{fence}")
    return "\n\n".join(blocks)


# -------------------------------------------------------------------------------------------------------- UI

INTRO = """\
# tinygpt

Hi Pythonistas! This is the character-level GPT from the blog series, running live.

Type a few characters. The model looks at the last **{block_size}** of them, scores every character it knows,
samples one, appends it and repeats: the loop from the final post, one character at a time.
No magic. Just embeddings, attention, a feed-forward and a softmax. Or train your own in the **Train** tab.
"""

GENERATE_HELP = f"""\
**Temperature** 0 always takes the likeliest character (greedy); higher is more adventurous.
**Top-k** keeps only the k likeliest characters (0 = off); **top-p** the smallest set holding that much
probability (1 = off). The same prompt, settings and **seed** always give the same text.
Limits: {MAX_NEW_TOKENS} new characters per request, prompts up to {MAX_PROMPT_CHARS} characters.
An empty prompt starts from the first character of the vocabulary (a newline for Shakespeare),
like the seed's `torch.zeros((1, 1))`; that starting character is not shown.
"""

INSIDE_HELP = """\
What the model makes of your prompt. **Left:** its ten favourite next characters (before temperature, top-k or
top-p). **Below:** every attention head of every layer. Each row is a character looking back; the bright cells
are the earlier characters it takes its information from. The grey upper triangle is the future: no peeking.
"""

TRAIN_HELP = """\
Train a new model from scratch on a text of your choice, right here: the loop from the final post (get a batch,
predict every next character, nudge the weights), with the loss measured on held-out text (the last 10 %) and a
sample written after every evaluation. Watch it go from random characters to words. When it ends, or you press
**Stop**, this tab's Generate and See inside use your model; other visitors never see it, and it is gone when
you close the tab, so download it or push it to the Hub.
"""

CSS = """
#output textarea, #prompt textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
#attention .attention-grid { display: grid; gap: 8px; grid-template-columns: repeat(auto-fill, minmax(min(100%, 280px), 1fr)); }
#attention figure { margin: 0; }
#attention img { width: 100%; height: auto; display: block; }
#attention figcaption { text-align: center; font-size: 14px; }
#attention h4 { margin: 12px 0 4px; }
#attention .attention-legend { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; font-size: 14px; }
#attention .attention-scale { display: inline-block; width: 120px; height: 12px; background: linear-gradient(to right, #f7fbff, #08306b); border: 1px solid #ccc; }
#attention .attention-future { display: inline-block; width: 12px; height: 12px; background: #f1f1f4; border: 1px solid #ccc; margin-left: 12px; }
#train-samples pre { white-space: pre-wrap; }
#facts table { display: block; overflow-x: auto; }  /* a phone scrolls the table instead of squeezing it */
#facts th, #facts td { white-space: nowrap; }
"""


def build_demo(served: TinyGPTDemo, trainings: Trainings, train_concurrency: int = TRAIN_CONCURRENCY) -> gr.Blocks:
    vocab = set(served.stoi)
    examples = [e for e in EXAMPLES if set(e[0]) <= vocab]
    sessions = trainings.sessions

    def model_for(request: gr.Request | None) -> TinyGPTDemo:
        """This session's trained model where it has one and chose it, else the served model."""
        session = sessions.get(request)
        if session is not None and session.use_trained:
            if session.trained is not None:
                return session.trained
            gr.Warning("Your trained model was dropped (the server keeps only the most recent ones); "
                       "using the served model.")
        return served

    async def generate(prompt, max_new_tokens, temperature, top_k, top_p, seed, request: gr.Request):
        stream = model_for(request).generate(prompt, max_new_tokens, temperature, top_k, top_p, seed)
        try:
            async for text in stream:
                yield text
        finally:  # Stop or a closed tab: close the model's stream now, so its worker stops at once
            await stream.aclose()

    def inspect(prompt, request: gr.Request):
        return model_for(request).inspect(prompt)

    def choose(choice, request: gr.Request):
        return trainings.choose(choice, request, served)

    with gr.Blocks(title="tinygpt", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO.format(block_size=served.block_size))
        with gr.Row(equal_height=False):
            prompt = gr.Textbox(
                label="Prompt",
                placeholder="ROMEO:",
                value=examples[0][0] if examples else "",
                lines=3,
                max_lines=12,
                elem_id="prompt",
                scale=4,
            )
            model_choice = gr.Radio(
                [(f"served: {served.facts['source']}", "served"), ("mine: trained in this tab", "trained")],
                value="served", label="Model", visible=False, elem_id="model-choice", scale=1, min_width=220,
            )
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                with gr.Row():
                    with gr.Column(scale=3):
                        output = gr.Textbox(
                            label="Prompt + what the model wrote",
                            lines=14,
                            max_lines=30,
                            autoscroll=True,
                            buttons=["copy"],
                            elem_id="output",
                        )
                        with gr.Row():
                            generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
                    with gr.Column(scale=2):
                        max_new_tokens = gr.Slider(
                            1, MAX_NEW_TOKENS, value=300, step=1, precision=0,
                            label=f"Max new characters (server cap {MAX_NEW_TOKENS})",
                        )
                        temperature = gr.Slider(0.0, 2.0, value=0.8, step=0.05, label="Temperature (0 = greedy)")
                        top_k = gr.Slider(
                            0, served.facts["vocab_size"], value=0, step=1, precision=0, label="Top-k (0 = off)"
                        )
                        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.01, label="Top-p (1 = off)")
                        with gr.Row():
                            seed = gr.Number(value=42, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", scale=3)
                            dice = gr.Button("Random seed", scale=1, size="sm")
                        gr.Markdown(GENERATE_HELP)
                if examples:
                    gr.Examples(
                        examples,
                        inputs=[prompt, max_new_tokens, temperature, top_k, top_p, seed],
                        label="Try these",
                    )
            with gr.Tab("See inside", id="inside") as inside_tab:
                gr.Markdown(INSIDE_HELP)
                inspect_btn = gr.Button("Look inside this prompt", elem_id="inspect-btn")
                with gr.Row():  # side by side on a laptop, stacked on a phone
                    with gr.Column(min_width=320):
                        bars = gr.BarPlot(
                            x="next character", y="probability", sort="-y", y_lim=[0, 1],
                            label="Next character: top 10", elem_id="next-chars",
                        )
                    with gr.Column(min_width=320):
                        context = gr.Markdown(elem_id="context")
                heatmaps = gr.HTML(label="Attention, per layer and head", elem_id="attention")
            with gr.Tab("Train", id="train"):
                gr.Markdown(TRAIN_HELP)
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        sources = [("paste text", "paste"), ("upload a .txt", "upload")]
                        if BUNDLED_TEXT.is_file():
                            sources.insert(0, ("tiny Shakespeare (bundled, 1.1 MB)", "bundled"))
                        source = gr.Radio(sources, value=sources[0][1], label="Text", elem_id="train-source")
                        pasted = gr.Textbox(label="Your text", lines=6, max_lines=12, visible=sources[0][1] == "paste",
                                            placeholder="Paste a few thousand characters or more", elem_id="train-text")
                        upload = gr.File(label="A .txt file, UTF-8", file_types=[".txt"], type="filepath",
                                         visible=False, elem_id="train-file")
                        gr.Markdown(f"Texts up to {TRAIN_MAX_BYTES // 2**20} MB: the server holds the whole text in "
                                    "memory while it trains and shares its CPU with everyone. Bigger texts: "
                                    "`train.py`.", elem_id="train-cap")
                    with gr.Column(scale=1, min_width=260):
                        size = gr.Dropdown(list(MODEL_SIZES), value=DEFAULT_SIZE, allow_custom_value=True,
                                           label="Model size (pick one, or type layers · heads · width · context)",
                                           elem_id="train-size")
                        seconds = gr.Slider(TRAIN_MIN_SECONDS, trainings.max_seconds, step=5,
                                            value=min(TRAIN_SECONDS, trainings.max_seconds),
                                            label=f"Time budget, seconds (server cap {trainings.max_seconds:g})",
                                            elem_id="train-seconds")
                        with gr.Row():
                            train_btn = gr.Button("Train", variant="primary", elem_id="train-btn")
                            train_stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop-btn")
                progress = gr.Markdown("", elem_id="train-progress")
                curve = gr.LinePlot(x="step", y="loss", color="series",
                                    label="Loss: val (orange) and train (blue) at each evaluation, "
                                    "train over the last second (light blue)",
                                    color_map={"train (running)": "#9ecae1", "train": "#2171b5", "val": "#e6550d"},
                                    height=340, elem_id="train-curve", x_title="step", y_title="loss", color_title="")
                samples = gr.Markdown("", elem_id="train-samples")
                with gr.Group(visible=False) as result_box:
                    download = gr.DownloadButton("Download the model folder (.zip)", visible=False,
                                                 elem_id="train-download")
                    with gr.Row():
                        repo_id = gr.Textbox(label="Hub repo id", placeholder="your-name/tiny-model", scale=2,
                                             elem_id="push-repo")
                        token = gr.Textbox(label="Hugging Face token (write access; not stored)", type="password",
                                           scale=2, elem_id="push-token")
                        if trainings.hub_login:
                            gr.LoginButton(scale=1)
                        push_btn = gr.Button("Push to the Hub", scale=1, elem_id="push-btn")
                    push_status = gr.Markdown("", elem_id="push-status")
        with gr.Accordion("About this model", open=True):
            facts = gr.Markdown(served.facts_markdown(), elem_id="facts")

        inputs = [prompt, max_new_tokens, temperature, top_k, top_p, seed]
        generation = generate_btn.click(generate, inputs, output, api_name="generate", show_progress="minimal")
        stop_btn.click(None, None, None, cancels=[generation], api_visibility="private")
        dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, api_visibility="private", queue=False)
        inspect_outputs = [bars, heatmaps, context]
        inspect_btn.click(inspect, prompt, inspect_outputs, api_name="inspect")
        inside_tab.select(inspect, prompt, inspect_outputs, api_visibility="private")
        model_choice.input(choose, model_choice, facts, api_visibility="private")

        # Train: checked at once (refusals show before any wait), then queued with the other trainings.
        source.change(lambda s: (gr.Textbox(visible=s == "paste"), gr.File(visible=s == "upload")), source,
                      [pasted, upload], api_visibility="private", queue=False)
        train_outputs = [curve, progress, samples, download, model_choice, facts, result_box]
        prepared = train_btn.click(trainings.prepare, [source, pasted, upload, size, seconds], progress,
                                   api_name="prepare_training", api_visibility="undocumented",
                                   concurrency_limit=None, trigger_mode="multiple", show_progress="hidden")
        training = prepared.success(trainings.train_page, None, train_outputs, api_visibility="private",
                                    concurrency_id="train", concurrency_limit=train_concurrency,
                                    show_progress="full", show_progress_on=[curve])
        training.failure(trainings.release, None, None, api_visibility="private", queue=False)
        gr.api(trainings.train_api, api_name="train", concurrency_id="train", concurrency_limit=train_concurrency)
        train_stop_btn.click(trainings.stop, None, progress, api_name="stop_training", concurrency_limit=None,
                             show_progress="hidden")
        download_file = gr.File(visible=False)
        gr.Button(visible=False).click(trainings.download, None, download_file, api_name="download",
                                       concurrency_limit=None)
        if trainings.hub_login:
            def push(repo, tok, request: gr.Request, oauth_token: gr.OAuthToken | None):
                return trainings.push(repo, tok, request, oauth_token)
        else:
            def push(repo, tok, request: gr.Request):
                return trainings.push(repo, tok, request)
        push_btn.click(push, [repo_id, token], push_status, api_name="push", concurrency_id="push",
                       concurrency_limit=2)
        def forget(request: gr.Request):  # the tab closed (gradio noticed its heartbeat stop)
            sessions.drop(request.session_hash)

        demo.unload(forget)
    return demo


# ------------------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The tinygpt demo: stream text from a character-level GPT, "
                                     "look inside it, train your own.")
    parser.add_argument(
        "--model",
        default=None,
        help="tinygpt folder or Hub repo id (default: $MODEL_ID, else the bundled checkpoints/tinyshakespeare)",
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 for everyone)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=f"generations at once (default {CONCURRENCY})")
    parser.add_argument("--max-queue", type=int, default=MAX_QUEUE, help=f"requests allowed to wait (default {MAX_QUEUE})")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per operation, for generation and training alike (default 1: a character model's "
        "matrices are too small to split, and concurrent users each get a core instead of fighting over all of them)",
    )
    parser.add_argument("--train-max-seconds", type=float, default=TRAIN_MAX_SECONDS,
                        help=f"the Train tab's longest time budget (default {TRAIN_MAX_SECONDS})")
    parser.add_argument("--train-concurrency", type=int, default=TRAIN_CONCURRENCY,
                        help=f"trainings at once (default {TRAIN_CONCURRENCY}); more wait in the queue, each training "
                        "takes --threads cores")
    parser.add_argument("--max-trained-models", type=int, default=MAX_TRAINED_MODELS,
                        help=f"sessions whose trained model is kept (default {MAX_TRAINED_MODELS}); the least recently "
                        "used goes first")
    return parser.parse_args(argv)


def hub_login_available() -> bool:
    """The Hub's "Sign in" button works on a Space whose README says `hf_oauth: true` (it then has OAUTH_CLIENT_ID)
    and has gradio's OAuth extras (`gradio[oauth]` in requirements.txt)."""
    import importlib.util

    return bool(os.environ.get("SPACE_ID") and os.environ.get("OAUTH_CLIENT_ID")
                and importlib.util.find_spec("itsdangerous") and importlib.util.find_spec("authlib"))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.train_max_seconds < TRAIN_MIN_SECONDS or args.train_concurrency < 1 or args.max_trained_models < 1:
        print(f"app.py: error: --train-max-seconds must be at least {TRAIN_MIN_SECONDS}, --train-concurrency and "
              "--max-trained-models at least 1", file=sys.stderr)
        return 2
    model_id = args.model or os.environ.get("MODEL_ID") or str(DEFAULT_MODEL)
    hf_logging.disable_progress_bar()
    try:
        loaded = load_model(model_id)
    except ModelError as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 1
    torch.set_num_threads(max(1, args.threads))
    served = TinyGPTDemo(loaded)
    # (A place for model-wide options such as --compile: applied to `served` here, before the warm-up.)
    served.warm_up()
    trainings = Trainings(Sessions(max_models=args.max_trained_models), max_seconds=args.train_max_seconds,
                          hub_login=hub_login_available())
    demo = build_demo(served, trainings, train_concurrency=args.train_concurrency)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)
    try:
        demo.launch(
            server_name=args.host, server_port=args.port, share=args.share or None, theme=gr.themes.Soft(), css=CSS,
            max_file_size=2 * TRAIN_MAX_BYTES,  # much bigger uploads are refused before they are even stored
        )
    finally:
        trainings.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
