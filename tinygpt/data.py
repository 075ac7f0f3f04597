"""Training data: a text file as a compact array of character ids, the seed's split, and random batches.

The seed does `data = torch.tensor(encode(text), dtype=torch.long)`: a Python list of ints (28+ bytes each)
and then 8 bytes per character. Here the file is read in pieces and every character becomes one small integer
(1 byte for up to 256 distinct characters), so a 100 MB corpus takes about 100 MB, not gigabytes.

Ids are the seed's: the index of the character in `sorted(set(text))`, which is what `char_tokenizer(text)`
gives too (`tokenizer_from_characters(chars)` builds it from the list kept here). A fine-tuned model is the one
exception: its vocabulary is the base model's, in the base model's order, then the new text's other characters
in sorted order (`base_chars`), so every character the model knew keeps its id.

A text bigger than memory (a `datasets` dataset, or a --data file over `MEMMAP_MIN_BYTES`) is prepared once into
a memory-mapped id file beside the run (`prepare_ids`, nanoGPT's `train.bin`): one streaming pass for the
characters, one to write the ids; a resumed run reuses the file when its source is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .corpus import CorpusError, iter_corpus

UNICODE_SIZE = 0x110000  # code points 0 .. 0x10FFFF
TRAIN_FRACTION = 0.9  # the seed's split: first 90 % train, last 10 % val
# A --data file at least this big is encoded into a memory-mapped id file beside the run instead of into memory.
MEMMAP_MIN_BYTES = 1 << 30
PREPARED_DIR = ".prepared-data"  # inside the output folder; hidden, so `tinygpt push` leaves it out
IDS_NAME, IDS_META_NAME = "ids.bin", "ids.json"
REPEATS_WINDOW = 1 << 25  # ids of the training part val_repeats_train searches (all of any text under 32 M chars)


@dataclass
class EncodedCorpus:
    """A corpus as ids: `chars[i]` is the character with id i (sorted), `ids` the whole text in order."""

    path: Path | str  # the file, or the name of an in-memory text
    chars: list[str]
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        """A sha256 of the text (its characters, then its ids): what a resumed run checks it continues on."""
        digest = hashlib.sha256("".join(self.chars).encode("utf-8", "surrogatepass") + b"\0")
        digest.update(memoryview(np.ascontiguousarray(self.ids)).cast("B"))  # no copy of a large corpus
        return "sha256:" + digest.hexdigest()

    def split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, val): the first 90 % and the last 10 % of the ids, as tensors sharing this memory."""
        n = split_index(len(self.ids))
        data = torch.from_numpy(self.ids)
        return data[:n], data[n:]


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest integer type torch can index with that holds every id (uint16 is not one of them)."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 15:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def encode_corpus(path: str | Path, chunk_bytes: int = 1 << 22, base_chars: Sequence[str] = ()) -> EncodedCorpus:
    """Read a UTF-8 text file twice in `chunk_bytes` pieces: once to find its characters, once to encode it.

    Memory: the ids (1 to 4 bytes per character) plus a few times `chunk_bytes` of working space.
    Raises `CorpusError` for a missing, empty or non-UTF-8 file (see `tinygpt.corpus`).
    """
    path = Path(path)
    return _encode(lambda: iter_corpus(path, chunk_bytes), path, base_chars)


def encode_text(text: str, name: str = "the text", base_chars: Sequence[str] = ()) -> EncodedCorpus:
    """The same for a text already in memory (the demo's); `name` is what error messages call it."""
    if not isinstance(text, str):
        raise CorpusError(f"{name}: expected the training text as a str, got {type(text).__name__}")
    if not text:
        raise CorpusError(f"{name} is empty; a corpus needs some text to learn characters from")
    return _encode(lambda: iter([text]), name, base_chars)


def _encode(pieces, path, base_chars: Sequence[str] = ()) -> EncodedCorpus:
    """`pieces()` yields the text in order (called twice: the characters first, then the ids)."""
    n, chars, lookup = _scan(pieces, base_chars, path)
    ids = np.empty(n, dtype=lookup.dtype)
    _fill(pieces, lookup, ids, path)
    return EncodedCorpus(path=path, chars=chars, ids=ids)


def _scan(pieces, base_chars: Sequence[str], path) -> tuple[int, list[str], np.ndarray]:
    """The first pass: (number of characters, the vocabulary, code point -> id lookup table)."""
    seen = np.zeros(UNICODE_SIZE, dtype=bool)
    n = 0
    for text in pieces():
        codes = _code_points(text)
        seen[codes] = True
        n += len(codes)
    if n == 0:
        raise CorpusError(f"{path}: no text; a corpus needs some text to learn characters from")
    base = np.array([ord(c) for c in base_chars], dtype=np.int64)
    seen[base] = False
    alphabet = np.concatenate([base, np.flatnonzero(seen)])  # the base's order, then new code points sorted
    dtype = id_dtype(len(alphabet))
    lookup = np.zeros(UNICODE_SIZE, dtype=dtype)
    lookup[alphabet] = np.arange(len(alphabet), dtype=dtype)
    return n, [chr(c) for c in alphabet], lookup


def _fill(pieces, lookup: np.ndarray, ids: np.ndarray | None, path, n: int | None = None, out=None) -> None:
    """The second pass: every character's id into `ids` (an array of exactly the text's length), or appended to
    the binary file `out` (n ids in all; written in order, so the file's pages never sit in this process)."""
    filled, n = 0, len(ids) if ids is not None else n
    for text in pieces():
        codes = _code_points(text)
        if filled + len(codes) > n:
            break
        if out is not None:
            out.write(lookup[codes].tobytes())
        else:
            ids[filled : filled + len(codes)] = lookup[codes]
        filled += len(codes)
    if filled != n:
        kind = "file" if isinstance(path, Path) else "text"
        raise CorpusError(f"{path}: the {kind} changed while it was being read; try again")


def prepare_ids(pieces: Callable[[], Iterable[str]], folder: Path, source: dict, name: str,
                base_chars: Sequence[str] = ()) -> EncodedCorpus:
    """The text `pieces()` yields, as ids in `folder/ids.bin` (memory-mapped), prepared once per `source`.

    `source` describes the text (a dataset's name and split, a file's size and time, ...). When the folder already
    holds ids prepared from the same source and base vocabulary, they are reused as they are; otherwise the
    text is read twice (characters, then ids) and written to a temporary file renamed into place, so a killed
    preparation never leaves a file that looks complete. Memory: the chunks `pieces` yields, not the text.
    """
    folder = Path(folder)
    source = dict(source, base="".join(base_chars))
    reused = load_prepared(folder, source, name)
    if reused is not None:
        return reused
    folder.mkdir(parents=True, exist_ok=True)
    n, chars, lookup = _scan(pieces, base_chars, name)
    partial = folder / (IDS_NAME + ".tmp")
    with partial.open("wb") as out:
        _fill(pieces, lookup, None, name, n=n, out=out)
    os.replace(partial, folder / IDS_NAME)
    meta = {"source": source, "chars": "".join(chars), "length": n, "dtype": lookup.dtype.name}
    (folder / (IDS_META_NAME + ".tmp")).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    os.replace(folder / (IDS_META_NAME + ".tmp"), folder / IDS_META_NAME)
    return load_prepared(folder, source, name)


def load_prepared(folder: Path, source: dict, name: str) -> EncodedCorpus | None:
    """The ids `prepare_ids` wrote in `folder` for `source`, memory-mapped; None if absent, stale or incomplete."""
    try:
        meta = json.loads((Path(folder) / IDS_META_NAME).read_text(encoding="utf-8"))
        dtype = np.dtype(meta["dtype"])
        fits = meta["source"] == source and (Path(folder) / IDS_NAME).stat().st_size == meta["length"] * dtype.itemsize
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not fits:
        return None
    # Copy-on-write ("c"): torch gets a writable array without the file ever being changed; pages load on use.
    ids = np.memmap(Path(folder) / IDS_NAME, dtype=dtype, mode="c", shape=(meta["length"],))
    return EncodedCorpus(path=name, chars=list(meta["chars"]), ids=ids)


def file_source(path: Path) -> dict:
    """What identifies a --data file for `prepare_ids`: its resolved path, size and modification time."""
    stat = Path(path).stat()
    return {"file": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def split_index(length: int) -> int:
    """Where the seed's split cuts a text of `length` characters: the first 90 % train, the rest validate."""
    return int(TRAIN_FRACTION * length)


def shortest_text(block_size: int) -> int:
    """The length to suggest for a text too short for `block_size`: each part must hold block_size + 1."""
    return int((block_size + 1) / (1 - TRAIN_FRACTION)) + 1


def check_split_lengths(train: torch.Tensor, val: torch.Tensor, block_size: int, path) -> None:
    """Each split must hold at least one (x, y) pair: block_size + 1 characters."""
    need = block_size + 1
    for name, data in (("training (first 90 %)", train), ("validation (last 10 %)", val)):
        if len(data) < need:
            total = len(train) + len(val)
            kind = "file" if isinstance(path, Path) else "text"
            raise CorpusError(
                f"{path}: too short for --block-size {block_size}: the {name} part has {len(data)} characters "
                f"but needs at least {need} (block_size + 1). The {kind} has {total} characters; give a text of "
                f"at least {shortest_text(block_size)} or a smaller --block-size"
            )


def get_batch(
    data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's `get_batch`: `batch_size` random windows of the data, targets shifted by one.

    x[b, t] = data[i_b + t] and y[b, t] = data[i_b + t + 1], i_b uniform in [0, len(data) - block_size), drawn
    from `generator` (one gather instead of the seed's Python loop of slices).
    """
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    windows = data[starts[:, None] + torch.arange(block_size + 1)].long()  # (B, T + 1)
    x = windows[:, :-1].contiguous()  # (B, T)
    y = windows[:, 1:].contiguous()  # (B, T)
    if device.type != "cpu":
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x, y


def val_repeats_train(train: torch.Tensor, val: torch.Tensor, block_size: int, samples: int = 200) -> float:
    """The share of validation passages that also occur, character for character, in the training part.

    A passage is max(block_size + 1, 32) characters (what one training example sees; at least a line, so a few
    common words do not count), taken at `samples` evenly spaced places of the val part. A text pasted several
    times scores near 1: its val loss then measures memorising, not learning. Fast: a byte search per passage.
    """
    length = max(block_size + 1, 32)
    train = train[-REPEATS_WINDOW:]  # a memory-mapped text can be gigabytes: search the part next to val only
    if len(val) < length or len(train) < length:
        return 0.0
    haystack, itemsize = train.numpy().tobytes(), train.element_size()
    starts = np.linspace(0, len(val) - length, num=min(samples, len(val) - length + 1)).astype(np.int64)
    found = 0
    for start in np.unique(starts):
        needle = val[start : start + length].numpy().tobytes()
        at = haystack.find(needle)
        while at != -1 and at % itemsize:  # a match across two ids' bytes is no match
            at = haystack.find(needle, at + 1)
        found += at != -1
    return found / len(np.unique(starts))
