"""The demo's model side (app.py's Generate and See inside tabs): load a tinygpt model for serving, stream text from
it with a per-request seeded sampler, and draw what it sees (next-character table, one attention map per head).

    served = TinyGPTDemo(load_model("checkpoints/tinyshakespeare"))
    async for text in served.generate("ROMEO:", 100, 0.8, 0, 1.0, seed=42): ...
    table, maps_html, note = served.inspect("ROMEO:")

Needs gradio (bad input is a `gr.Error` the page shows), so `import tinygpt` never imports this module; app.py does.
It imports only torch, transformers, gradio and tinygpt's light helpers, so it runs where tinygpt is just the folder
beside app.py (a Space).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import threading
from dataclasses import dataclass
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

from .common import CharStreamer, code_fence, is_local_path, one_line
from .generation import MAX_SEED, check_generation_params  # noqa: F401  (MAX_SEED: app.py's seed box)
from .loading import ModelLoadError, check_local_folder, check_model_dir, check_tinygpt_config
from .run_state import RunState, bits_per_character
from .tokenization import describe_unknown_characters

MAX_NEW_TOKENS = 1000  # server-side cap on characters per request (the slider's maximum)
MAX_PROMPT_CHARS = 2000  # longer prompts are refused; the model only ever sees the last block_size of them
TOP_N = 10  # bars in the next-character chart
# Streamed updates per request are at most one per STREAM_INTERVAL seconds (50 a second): each character is sent
# as soon as it exists, but a fast model's characters are bundled instead of costing one message each.
STREAM_INTERVAL = 0.02

# Characters that would be invisible as plot labels.
VISIBLE = {"\n": "⏎", " ": "␣", "\t": "⇥", "\r": "\\r"}


class BadInput(gr.Error):
    """A request the server refuses: the user sees the message; the server log gets no traceback."""

    def __init__(self, message: str):
        super().__init__(message, print_exception=False)


class ModelError(Exception):
    """A --model that cannot be served; the message is one line that says what to do."""


def check_string(value, what: str) -> str:
    """`value` if it is text the model can read, else a BadInput in plain words. A raw HTTP client can send any
    JSON: a number or a list where text belongs, or a lone surrogate ("\\ud800", half of an emoji's UTF-16 pair),
    which is no character at all and cannot even be sent back."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(f"{what} must be text (a string), got {type(value).__name__}: {str(value)[:40]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise BadInput(f"{what} has a broken character at position {err.start:,} (half of a character pair, "
                       f"U+{ord(value[err.start]):04X}, not a character by itself): copy the text again from "
                       "its source") from None
    return value


def show(char: str) -> str:
    return VISIBLE.get(char, char)


# --------------------------------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    model: torch.nn.Module
    tokenizer: object
    source: str
    facts: dict


def load_model(name_or_path: str | os.PathLike, label: str | None = None, missing_hint: str = "") -> Loaded:
    """A tinygpt model + tokenizer from a local folder or a Hub repo id, or a one-line `ModelError`.

    `label` is how the page names the model (default: the repo id, or the folder's name: never a server path);
    `missing_hint` ends the message when the folder does not exist (what to do instead).
    """
    name = str(name_or_path)
    local = is_local_path(name)
    if local:
        path = Path(name).expanduser()
        _check_folder(path, name, missing_hint)
        name = str(path)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=True)
    except Exception as err:  # OSError for a missing repo, ValueError for a bad config, ...
        raise ModelError(f"{name}: cannot load its config: {one_line(err)}") from None
    try:  # a Hub repo: the same check as a folder's, on the config just downloaded
        check_tinygpt_config(config.to_dict(), name, hint="this demo needs a tinygpt model")
    except ModelLoadError as err:
        raise ModelError(one_line(err)) from None
    try:
        model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=True).eval()
    except Exception as err:
        raise ModelError(f"{name}: cannot load the model: {one_line(err)}") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=True)
    except Exception as err:  # the tokenizers library's messages name no file
        raise ModelError(f"{name}: cannot load its tokenizer (tokenizer.json): {one_line(err)}") from None
    if len(tokenizer) != config.vocab_size:
        raise ModelError(
            f"{name}: the tokenizer has {len(tokenizer)} characters but vocab_size is {config.vocab_size}; "
            "the model and tokenizer were not saved together"
        )
    label = label or (Path(name).resolve().name if local else name)
    return Loaded(model, tokenizer, name, _facts(model, name, label))


def _check_folder(path: Path, name: str, missing_hint: str = "") -> None:
    """Fail early, and plainly, on a folder that is not a tinygpt model (transformers' errors are long): loading's
    one check, which the `tinygpt` command and the Hub code make too, in the same words."""
    try:
        check_local_folder(path, name, missing_hint)
        check_model_dir(path, name, need_tokenizer=True)
    except ModelLoadError as err:
        raise ModelError(one_line(err)) from None


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
            run = RunState.from_json(state)
        except ValueError:  # it only describes the run: the facts go without it
            run = None
        evaluated = run and (run.model_eval or run.best_eval)  # the evaluation of the weights in the folder
        if evaluated:
            facts["val_loss"], facts["steps"] = evaluated["val_loss"], evaluated.get("step")
        elif run:
            facts["val_loss"], facts["steps"] = run.best_val_loss, run.global_step
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


class ThreadStream:
    """The one bridge from a worker thread to the page, for Generate and for Train.

        stream = ThreadStream(work, name="tinygpt-generate").start()   # on the event loop
        async for batch in stream.batches(): ...                       # lists of what `work` emitted, in order
        await stream.aclose()                                          # the page went away: `stop` is set

    `work(emit, stop)` runs in a daemon thread, calls `emit(item)` from there and should end soon after `stop` (a
    threading.Event) is set. An exception raised by `work` is raised by `batches`, after what was emitted before it.
    `min_interval` bundles items that arrive faster than that (a page needs no more than ~50 updates a second);
    `wake_every` yields an empty list when nothing arrived for that long (so a clock on the page keeps moving).
    """

    def __init__(self, work, name: str):
        self.work, self.name = work, name
        self.stop = threading.Event()
        self._queue: asyncio.Queue | None = None

    def start(self) -> "ThreadStream":
        loop = asyncio.get_running_loop()
        self._queue = queue = asyncio.Queue()

        def emit(item):  # from the worker thread
            if self.stop.is_set() and item is not _DONE:
                return  # nobody is reading any more
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone: the server is shutting down
                self.stop.set()

        def run():
            try:
                self.work(emit, self.stop)
            except BaseException as err:  # handed to the reader, which says it in one line
                emit(_Failed(err))
            finally:
                emit(_DONE)

        threading.Thread(target=run, name=self.name, daemon=True).start()
        return self

    async def batches(self, min_interval: float = 0.0, wake_every: float | None = None):
        loop = asyncio.get_running_loop()
        queue, last = self._queue, 0.0
        while True:
            try:
                parts = [await asyncio.wait_for(queue.get(), wake_every)] if wake_every else [await queue.get()]
            except asyncio.TimeoutError:
                parts = []
            wait = last + min_interval - loop.time()
            if parts and wait > 0:  # at most one batch per interval: what arrives meanwhile goes out together
                await asyncio.sleep(wait)
            while not queue.empty():
                parts.append(queue.get_nowait())
            last = loop.time()
            items = []
            for part in parts:
                if isinstance(part, _Failed) or part is _DONE:
                    if items:
                        yield items
                    if part is _DONE:
                        return
                    raise part.error
                items.append(part)
            yield items

    async def aclose(self) -> None:
        self.stop.set()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


class TinyGPTDemo:
    """One model behind the page (the served one, or a session's trained one): input checks, streaming
    generation and the see-inside views. `prompts`: a few starts of the text it was trained on, where the page
    knows it (Generate's prompt and examples for a model trained in the Train tab)."""

    def __init__(self, loaded: Loaded, prompts: tuple[str, ...] = ()):
        self.prompts = tuple(prompts)
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
        prompt = check_string(prompt, "The prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BadInput(
                f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS} "
                f"(the model only reads the last {self.block_size} anyway)."
            )
        self.check_characters(prompt)
        ids = [self.stoi[c] for c in prompt] or [0]  # the seed's `torch.zeros((1, 1))`
        return torch.tensor([ids], dtype=torch.long, device=self.device)

    def knows(self, text: str) -> bool:
        """Whether every character of `text` is in the model's vocabulary."""
        return set(text) <= self.stoi.keys()

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
        """The request's generation parameters, checked where `tinygpt generate` and the engine check theirs."""
        try:
            return check_generation_params(max_new_tokens, temperature, top_k, top_p, seed,
                                           max_new_tokens_limit=MAX_NEW_TOKENS)
        except ValueError as err:
            raise BadInput(str(err)) from None

    # -- generation

    async def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        """Yields prompt + the continuation so far, growing as the worker thread produces characters."""
        input_ids = self.encode(prompt)
        prompt = check_string(prompt, "The prompt")
        max_new_tokens, temperature, top_k, top_p, seed = self.settings(max_new_tokens, temperature, top_k, top_p, seed)
        kwargs = {"attention_mask": torch.ones_like(input_ids), "max_new_tokens": max_new_tokens, "do_sample": False}
        if temperature > 0:
            kwargs["logits_processor"] = LogitsProcessorList([SeededSampler(temperature, top_k, top_p, seed, self.device)])

        def work(emit, stop):  # in the stream's thread: each character goes out the moment it exists
            kwargs["stopping_criteria"] = StoppingCriteriaList([StopWhenSet(stop)])
            with torch.inference_mode():
                self.model.generate(input_ids, streamer=CharStreamer(self.decode, emit), **kwargs)

        stream = ThreadStream(work, name="tinygpt-generate").start()
        text = prompt
        try:
            yield text  # the prompt shows at once
            async for parts in stream.batches(min_interval=STREAM_INTERVAL):  # a fast model's characters bundled
                text += "".join(parts)
                yield text
        except Exception as err:  # reported in one line; the server carries on
            raise gr.Error(f"generation failed: {one_line(err)}") from None
        finally:  # finished, cancelled by Stop, or the client went away: the worker stops at its next character
            await stream.aclose()

    def decode(self, ids: list[int]) -> str:
        return "".join(self.itos[i] for i in ids)

    def compile(self) -> float:
        """Decode with a static cache and a `torch.compile`d step from now on (what `tinygpt.generate.compile_decoding`
        does), compiled now for the longest request; returns the seconds it took. Requests then share the compiled
        step; each still gets its own cache."""
        from .generate import compile_decoding

        return compile_decoding(self.model, MAX_NEW_TOKENS)

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
        fence = code_fence(seen)
        return f"{where} (block_size = {self.block_size}):\n\n{fence}text\n{seen}\n{fence}"

    def facts_markdown(self) -> str:
        f = self.facts
        loss = "not recorded"
        if f["val_loss"] is not None:  # nats per character, and the same in bits
            loss = (f"{f['val_loss']:.4f} ({bits_per_character(f['val_loss']):.2f} bits per character)"
                    + (f" at step {f['steps']:,}" if f["steps"] else ""))
        # Two columns, one fact a row: it fits a phone as well as a laptop.
        return "\n".join([
            f"**Model** `{f['source']}`",
            "",
            "| | |",
            "|---|---|",
            f"| parameters | {f['params']:,} |",
            f"| layers · heads · width | {f['n_layer']} · {f['n_head']} · {f['n_embd']} |",
            f"| context (block size) | {f['block_size']} characters |",
            f"| vocabulary | {f['vocab_size']} characters |",
            f"| val loss | {loss} |",
        ])


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

