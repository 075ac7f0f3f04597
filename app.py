"""The tinygpt demo: watch the blog series' character-level GPT write, one character at a time.

    python app.py [--model DIR_OR_REPO_ID] [--host H] [--port P] [--share]

`--model` (or the `MODEL_ID` environment variable; the flag wins) is a tinygpt folder made with
`save_pretrained` or a Hub repo id; the default is the bundled `checkpoints/tinyshakespeare` next to this file.

The same file runs as a Hugging Face Space: it imports only torch, transformers and gradio (matplotlib for the
attention maps), and loads the model with `trust_remote_code=True`, so tinygpt itself need not be installed.

API (`gradio_client.Client(url).predict(..., api_name="/generate")`), positional inputs:
    prompt: str, max_new_tokens: int, temperature: float, top_k: int, top_p: float, seed: int
returns prompt + continuation. temperature 0 is greedy, top_k 0 and top_p 1 are off. Same inputs and seed give the
same text whatever else the server is doing: every request samples from its own seeded `torch.Generator`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
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
from transformers.generation.streamers import BaseStreamer
from transformers.utils import cached_file
from transformers.utils import logging as hf_logging

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / "checkpoints" / "tinyshakespeare"

MAX_NEW_TOKENS = 1000  # server-side cap on characters per request (the slider's maximum)
MAX_PROMPT_CHARS = 2000  # longer prompts are refused; the model only ever sees the last block_size of them
MAX_SEED = 2**32 - 1
CONCURRENCY = 8  # generations running at once; more requests wait in the queue
MAX_QUEUE = 64  # requests waiting beyond that are turned away ("queue full") instead of piling up
TOP_N = 10  # bars in the next-character chart
# Streamed updates per request are at most one per STREAM_INTERVAL seconds (50 a second): each character is sent
# as soon as it exists, but a fast model's characters are bundled instead of costing one message each.
STREAM_INTERVAL = 0.02

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


def load_model(name_or_path: str | os.PathLike) -> Loaded:
    """A tinygpt model + tokenizer from a local folder or a Hub repo id, or a one-line `ModelError`."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    local = path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1 or "\\" in name
    if local:
        _check_folder(path, name)
        name = str(path)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=True)
    except Exception as err:  # OSError for a missing repo, ValueError for a bad config, ...
        raise ModelError(f"{name}: cannot load its config: {_first_line(err)}") from None
    if getattr(config, "model_type", None) != "tinygpt":
        raise ModelError(f"{name}: model_type is {config.model_type!r}, not 'tinygpt'; this demo needs a tinygpt model")
    try:
        model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=True)
    except Exception as err:
        raise ModelError(f"{name}: cannot load the model or its tokenizer: {_first_line(err)}") from None
    if len(tokenizer) != config.vocab_size:
        raise ModelError(
            f"{name}: the tokenizer has {len(tokenizer)} characters but vocab_size is {config.vocab_size}; "
            "the model and tokenizer were not saved together"
        )
    return Loaded(model, tokenizer, name, _facts(model, name))


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
        raise ModelError(f"{config_file}: not a valid config ({_first_line(err)})") from None
    if model_type != "tinygpt":
        raise ModelError(f"{name}: config.json says model_type={model_type!r}, not a tinygpt model")
    for needed in ("model.safetensors", "tokenizer.json"):
        if not (path / needed).is_file():
            raise ModelError(f"{name}: no {needed}; save the model and its tokenizer together in this folder")


def _facts(model, source: str) -> dict:
    config = model.config
    facts = {
        "source": source,
        "params": sum(p.numel() for p in model.parameters()),
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "block_size": config.block_size,
        "vocab_size": config.vocab_size,
        "val_loss": None,
        "steps": None,
    }
    state = _optional_file(source, "trainer_state.json")  # written by train.py; not pushed to the Hub
    if state:
        try:
            state = json.loads(state)
            val_losses = [e["val_loss"] for e in state.get("log_history", []) if e.get("val_loss") is not None]
            facts["val_loss"] = state.get("best_val_loss", min(val_losses, default=None))
            facts["steps"] = state.get("global_step")
        except (ValueError, TypeError, AttributeError, KeyError):
            pass
    if facts["val_loss"] is None:  # a pushed model: the model card's YAML header carries `val_loss`
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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


class CharQueueStreamer(BaseStreamer):
    """Hands every new character to `emit` as soon as it is chosen.

    transformers' TextIteratorStreamer holds text back until a word is complete; a character model should show
    each character as it comes.
    """

    def __init__(self, itos: list[str], emit):
        self.itos = itos
        self.emit = emit
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        self.emit("".join(self.itos[i] for i in value.reshape(-1).tolist()))

    def end(self) -> None:
        pass


_DONE = object()


class TinyGPTDemo:
    """The model behind the page: input checks, streaming generation and the see-inside views."""

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
        unknown = sorted(set(prompt) - self.stoi.keys())
        if unknown:
            names = ", ".join(repr(c) for c in unknown)
            raise BadInput(
                f"{len(unknown)} character(s) this model has never seen: {names}. "
                f"It only knows the {len(self.stoi)} characters of its training text."
            )
        ids = [self.stoi[c] for c in prompt] or [0]  # the seed's `torch.zeros((1, 1))`
        return torch.tensor([ids], dtype=torch.long, device=self.device)

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
            "streamer": CharQueueStreamer(self.itos, emit),
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
                    raise gr.Error(f"generation failed: {_first_line(errors[0])}")
                new = "".join(p for p in parts if isinstance(p, str))
                if new:
                    text += new
                    yield text
                if done:
                    return
        finally:  # finished, cancelled by Stop, or the client went away: the worker stops at its next character
            stop.set()

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
        streamer = CharQueueStreamer(self.itos, lambda text: None)
        with torch.inference_mode():
            self.model.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=2, do_sample=False,
                logits_processor=sampler, stopping_criteria=StoppingCriteriaList([StopWhenSet(threading.Event())]),
                streamer=streamer,
            )
        self.inspect("")

    # -- see inside

    def inspect(self, prompt):
        """(top-10 next-character table, attention heat maps, what the model sees) for the prompt."""
        input_ids = self.encode(prompt)[:, -self.block_size :]  # a forward pass sees at most block_size characters
        with torch.inference_mode():
            out = self.model(input_ids, output_attentions=True, use_cache=False)
        probs = torch.softmax(out.logits[0, -1].float(), dim=-1)
        top = torch.topk(probs, min(TOP_N, probs.numel()))
        chars = [self.itos[i] for i in input_ids[0].tolist()]
        table = _table(
            [show(self.itos[i]) for i in top.indices.tolist()], [round(p, 4) for p in top.values.tolist()]
        )
        attentions = [a[0].float().cpu() for a in out.attentions]  # per layer: (n_head, T, T)
        return table, attention_figure(attentions, chars), self._context_note(prompt or "", chars)

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


def attention_figure(attentions: list[torch.Tensor], chars: list[str]):
    """One heat map per layer (rows) and head (columns): row = the character looking, column = the one looked at.

    The characters label the left column and the bottom row only (every map has the same ones), and the layout
    is computed here rather than by matplotlib's layout engine: tick labels are what makes such a figure slow.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # the object API: no pyplot state shared between threads

    cmap = colormaps["Blues"].with_extremes(bad="#f1f1f4")  # the masked future: light grey, not "zero"
    n_layer, n_head, T = len(attentions), attentions[0].shape[0], len(chars)
    every = max(1, -(-T // 40))  # at most ~40 labels per axis
    ticks = list(range(0, T, every))
    labels = [show(chars[t]) for t in ticks]
    # Sizes in inches: maps, the gaps between them, and margins for labels, titles and the colour bar.
    cell = min(3.6, max(2.2, 0.11 * T), 18.0 / n_head)
    gap_x, gap_y, left, right, bottom, top = 0.15, 0.35, 0.6, 1.0, 0.6, 0.3
    width = left + n_head * cell + (n_head - 1) * gap_x + right
    height = bottom + n_layer * cell + (n_layer - 1) * gap_y + top
    fig = Figure(figsize=(width, height), dpi=80)
    axes = fig.subplots(
        n_layer, n_head, squeeze=False,
        gridspec_kw=dict(
            left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
            wspace=gap_x / cell, hspace=gap_y / cell,
        ),
    )
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # causal mask: these weights are always 0
    image = None
    for layer, weights in enumerate(attentions):
        for head in range(n_head):
            ax = axes[layer][head]
            shown = weights[head].masked_fill(future, float("nan")).numpy()
            image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
            ax.set_title(f"layer {layer + 1} · head {head + 1}", fontsize=9, pad=3)
            ax.tick_params(length=0, pad=1, labelsize=7)
            if head == 0:
                ax.set_yticks(ticks, labels, family="monospace")
                ax.set_ylabel("looking from", fontsize=8)
            else:
                ax.set_yticks([])
            if layer == n_layer - 1:
                ax.set_xticks(ticks, labels, family="monospace")
                ax.set_xlabel("looking at", fontsize=8)
            else:
                ax.set_xticks([])
    bar = fig.add_axes((1 - (right - 0.25) / width, bottom / height, 0.14 / width, 1 - (bottom + top) / height))
    fig.colorbar(image, cax=bar, label="attention weight")
    return fig


# -------------------------------------------------------------------------------------------------------- UI

INTRO = """\
# tinygpt

Hi Pythonistas! This is the character-level GPT from the blog series, running live.

Type a few characters. The model looks at the last **{block_size}** of them, scores every character it knows,
samples one, appends it and repeats: the loop from the final post, one character at a time.
No magic. Just embeddings, attention, a feed-forward and a softmax.
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

CSS = """
#output textarea, #prompt textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
"""


def build_demo(demo_model: TinyGPTDemo) -> gr.Blocks:
    vocab = set(demo_model.stoi)
    examples = [e for e in EXAMPLES if set(e[0]) <= vocab]

    with gr.Blocks(title="tinygpt") as demo:
        gr.Markdown(INTRO.format(block_size=demo_model.block_size))
        prompt = gr.Textbox(
            label="Prompt",
            placeholder="ROMEO:",
            value=examples[0][0] if examples else "",
            lines=3,
            max_lines=12,
            elem_id="prompt",
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
                            0, demo_model.facts["vocab_size"], value=0, step=1, precision=0, label="Top-k (0 = off)"
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
                with gr.Row():
                    bars = gr.BarPlot(
                        x="next character", y="probability", sort="-y", y_lim=[0, 1],
                        label="Next character: top 10", elem_id="next-chars", scale=1,
                    )
                    context = gr.Markdown(elem_id="context")
                heatmaps = gr.Plot(label="Attention, per layer and head", show_label=False, format="png", elem_id="attention")
        with gr.Accordion("About this model", open=True):
            gr.Markdown(demo_model.facts_markdown(), elem_id="facts")

        inputs = [prompt, max_new_tokens, temperature, top_k, top_p, seed]
        generation = generate_btn.click(
            demo_model.generate, inputs, output, api_name="generate", show_progress="minimal",
        )
        stop_btn.click(None, None, None, cancels=[generation], api_visibility="private")
        dice.click(lambda: random.randint(0, 2**31 - 1), None, seed, api_visibility="private", queue=False)
        inspect_outputs = [bars, heatmaps, context]
        inspect_btn.click(demo_model.inspect, prompt, inspect_outputs, api_name="inspect")
        inside_tab.select(demo_model.inspect, prompt, inspect_outputs, api_visibility="private")
    return demo


# ------------------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The tinygpt demo: stream text from a character-level GPT.")
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
        help="torch threads per operation (default 1: a character model's matrices are too small to split, "
        "and concurrent users each get a core instead of fighting over all of them)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    model_id = args.model or os.environ.get("MODEL_ID") or str(DEFAULT_MODEL)
    hf_logging.disable_progress_bar()
    try:
        loaded = load_model(model_id)
    except ModelError as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 1
    torch.set_num_threads(max(1, args.threads))
    demo_model = TinyGPTDemo(loaded)
    demo_model.warm_up()
    demo = build_demo(demo_model)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)
    demo.launch(
        server_name=args.host, server_port=args.port, share=args.share or None, theme=gr.themes.Soft(), css=CSS
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
