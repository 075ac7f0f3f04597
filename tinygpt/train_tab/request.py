"""What a training request may be: a text (pasted, uploaded, the bundled file or sent to /train), a model size, a
time budget, a number of steps and a starting point, each checked once, in plain words.

    rules = RequestRules(max_seconds=300, bundled_text=Path("data/tinyshakespeare.txt"), served=ServedModel.of(...))
    request = rules.check_api(text, size, seconds, max_iters, start_from)      # or a BadInput naming what is wrong
    request, problems = rules.check_page(source, pasted, upload, size, seconds, start_from)  # problems per field

A `RunRequest` is what the line and the engine get: nothing is checked again after it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..corpus import CorpusError, decode_utf8
from ..data import shortest_text, split_index
from ..demo import BadInput, Loaded, check_string

# The whole text is held in memory (as a string and as ids) while it trains, and a shared CPU server reads and
# encodes 10 MB in a few seconds: bigger texts are for train.py.
TRAIN_MAX_BYTES = 10 * 1024 * 1024
TRAIN_SECONDS = 60  # the time budget's default: the seed's model reaches val < 2.0 on tiny Shakespeare by then
TRAIN_MAX_SECONDS = 300  # the budget's cap (--train-max-seconds)
TRAIN_MIN_SECONDS = 5
# Model sizes offered: (n_layer, n_head, n_embd, block_size). The first is the default (the seed's model). Short
# labels: the page's dropdown shows them whole on a phone.
MODEL_SIZES = {
    "2 layers · 4 heads · 64 wide · context 32": (2, 4, 64, 32),
    "4 layers · 4 heads · 128 wide · context 64": (4, 4, 128, 64),
    "1 layer · 4 heads · 32 wide · context 16": (1, 4, 32, 16),
}
SIZE_HELP = ("The first is the blog's model. The bigger one takes longer per step (give it more time); the tiny one "
             "suits short texts. Or type your own: layers · heads · width · context.")
DEFAULT_SIZE = next(iter(MODEL_SIZES))
SIZE_LIMITS = {"layers": 8, "heads": 16, "width": 512, "context": 256}  # what a shared CPU trains in minutes
# Where a training starts: /train's `start_from` and the page's "Start from" choice.
SCRATCH, SERVED = "scratch", "served"
# The page's inputs, in the order of its Train event (what `check_page` reports problems for).
PAGE_FIELDS = ("source", "pasted", "upload", "size", "seconds", "start_from")
PROMPT_LENGTH = 24  # the longest example prompt taken from a text (Generate's examples after training on it)


# ------------------------------------------------------------------------------------------------- the text


@dataclass(frozen=True)
class CheckedText:
    """A text that passed every check: read once, checked once, then trained on.

    `path` is set for a file the server has (the bundled text): the engine reads it itself, so the card's reproduce
    command names it by its path in the project and the folder carries no copy. `prompts` are a few starts of its
    lines, Generate's prompt and examples once a model is trained on it."""

    text: str | None
    name: str  # how the page names it: "the pasted text", "tinyshakespeare.txt", ...
    characters: int
    path: Path | None = None
    prompts: tuple[str, ...] = ()

    def without_text(self) -> CheckedText:
        """The same, holding no copy of the text (a file the engine reads itself, or a text the engine now holds)."""
        return CheckedText(None, self.name, self.characters, self.path, self.prompts)


def check_text(text, name: str, block_size: int, path: Path | None = None) -> CheckedText:
    """The one check of a training text for a model of `block_size`, whatever its source."""
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
    return CheckedText(text, name, n, path, example_prompts(text))


def read_upload(path: str | os.PathLike, block_size: int) -> CheckedText:
    """An uploaded (or the bundled) file, read once and checked, or a BadInput that says what is wrong with it."""
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


def too_big(name: str, size: int) -> str:
    return (f"Too big: {name} is {size / 2**20:.1f} MB, and this demo trains on at most {TRAIN_MAX_BYTES // 2**20} MB "
            "(the server holds the whole text in memory while it trains). Use train.py for bigger texts.")


def example_prompts(text: str, count: int = 3) -> tuple[str, ...]:
    """Up to `count` different prompts from the starts of the text's lines (read from its first 20,000 characters):
    a short line whole with its newline ("ROMEO:\\n"), a longer one cut after a word. Every character is the
    text's, so a model trained on it knows them all."""
    prompts: list[str] = []
    for line in text[:20_000].splitlines():
        if not any(c.isalnum() for c in line):
            continue
        if len(line) < PROMPT_LENGTH:
            prompt = line + "\n" if f"{line}\n" in text else line
        else:
            cut = line.rfind(" ", 0, PROMPT_LENGTH)
            prompt = line[:cut] if cut > 0 else line[:PROMPT_LENGTH]
        if prompt.strip() and prompt not in prompts:
            prompts.append(prompt)
        if len(prompts) == count:
            break
    return tuple(prompts)


# ------------------------------------------------------------------------------------------------ the numbers


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


def check_seconds(seconds, cap: float) -> float:
    if isinstance(seconds, bool):
        seconds = None
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise BadInput(f"The time budget must be a number of seconds, got {seconds!r}") from None
    if not TRAIN_MIN_SECONDS <= seconds <= cap:  # NaN included
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


# ---------------------------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class ServedModel:
    """The model the server serves, as a training's starting point: `source` is what `--model` named (a folder or
    a Hub repo id; the engine's init_from loads it again), `label` how the page names it, `dims` its size."""

    source: str
    label: str
    dims: tuple[int, int, int, int]

    @classmethod
    def of(cls, loaded: Loaded) -> ServedModel:
        c = loaded.model.config
        return cls(str(loaded.source), loaded.facts["source"], (c.n_layer, c.n_head, c.n_embd, c.block_size))

    def note(self) -> str:
        """What the page says under the size choice while fine-tuning."""
        return (f"Fine-tuning keeps the served model's size ({size_label(self.dims)}) and its characters; "
                "characters new to it are added.")


@dataclass(frozen=True)
class RunRequest:
    """A request that passed every check: what to train on, how big, for how long, from where."""

    text: CheckedText
    dims: tuple[int, int, int, int]  # (n_layer, n_head, n_embd, block_size); a fine-tune's are its base model's
    seconds: float  # the time budget
    max_iters: int = 0  # 0: the cpu preset's 2,400 steps
    base: ServedModel | None = None  # the model it fine-tunes; None: from scratch

    @property
    def start_from(self) -> str:
        return SERVED if self.base else SCRATCH


@dataclass(frozen=True)
class RequestRules:
    """What this server lets a request be: a time budget up to `max_seconds`, the bundled text (None: none), the
    served model as a starting point (None: from scratch only)."""

    max_seconds: float = TRAIN_MAX_SECONDS
    bundled_text: Path | None = None
    served: ServedModel | None = None

    @property
    def has_bundled_text(self) -> bool:
        return self.bundled_text is not None and self.bundled_text.is_file()

    def start(self, start_from, size) -> tuple[tuple[int, int, int, int], ServedModel | None]:
        """(the model's size, the model to fine-tune or None). Fine-tuning keeps the served model's size: the size
        asked for is then not even read."""
        if start_from not in (SCRATCH, SERVED):
            raise BadInput(f"start_from must be {SCRATCH!r} (random weights) or {SERVED!r} (fine-tune the model this "
                           f"server serves), got {start_from!r}")
        if start_from == SCRATCH:
            return parse_size(size), None
        if self.served is None:
            raise BadInput("This server offers no model to fine-tune: start from scratch")
        return self.served.dims, self.served

    def check_api(self, text, size, seconds, max_iters, start_from) -> RunRequest:
        """/train's inputs as a RunRequest, or the first BadInput."""
        dims, base = self.start(start_from, size)
        seconds = check_seconds(seconds, self.max_seconds)
        max_iters = check_max_iters(max_iters)
        return RunRequest(check_text(text, "the text", dims[3]), dims, seconds, max_iters, base)

    def check_page(self, source, pasted, upload, size, seconds, start_from) -> tuple[RunRequest | None, dict]:
        """The page's inputs (PAGE_FIELDS) as a RunRequest, or None and {field: what is wrong with it} for every
        field that is wrong, so the page can say each beside its field."""
        problems = {}
        dims = base = None
        try:
            dims, base = self.start(start_from, size)
        except BadInput as err:
            problems["size" if start_from == SCRATCH else "start_from"] = err.message
        try:
            seconds = check_seconds(seconds, self.max_seconds)
        except BadInput as err:
            problems["seconds"] = err.message
        try:
            text = self.read_page_text(source, pasted, upload, dims[3] if dims else 1)
        except BadInput as err:
            problems["upload" if source == "upload" else "pasted" if source == "paste" else "source"] = err.message
        if problems:
            return None, problems
        return RunRequest(text, dims, seconds, 0, base), {}

    def read_page_text(self, source, pasted, upload, block_size: int) -> CheckedText:
        if source == "bundled":
            if not self.has_bundled_text:
                raise BadInput("The bundled tiny Shakespeare is not on this server; paste or upload a text instead")
            checked = read_upload(self.bundled_text, block_size)
            return CheckedText(checked.text, checked.name, checked.characters, self.bundled_text, checked.prompts)
        if source == "upload":
            if not upload:
                raise BadInput("No file uploaded yet: choose a text file (.txt, UTF-8), or pick another text source")
            return read_upload(upload, block_size)
        if source != "paste":
            raise BadInput(f"The text source must be 'bundled', 'paste' or 'upload', got {source!r}")
        return check_text(pasted, "the pasted text", block_size)
