"""Reading a training text: the one place that turns a file into the corpus string, with errors that say why."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path


class CorpusError(ValueError):
    """A text file that cannot be a corpus: missing, empty, or not UTF-8."""


def read_corpus(path: str | Path) -> str:
    """The whole file as text, decoded as UTF-8 (the encoding the seed's `open(..., encoding="utf-8")` uses)."""
    return "".join(iter_corpus(path))


def iter_corpus(path: str | Path, chunk_bytes: int = 1 << 22) -> Iterator[str]:
    """The file's text in pieces of about `chunk_bytes` bytes, for corpora too big to hold as one string.

    Missing, empty and non-UTF-8 files raise a CorpusError (the byte offset of a decoding error counts from the
    start of the file); a character split between two reads is carried over, so the pieces join to the whole text.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if path.is_dir():
        raise CorpusError(f"{path}: is a folder; give the text file itself")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file handed to the decoder so far
    with path.open("rb") as f:
        while True:
            data = f.read(chunk_bytes)
            if not data and offset == 0:
                raise _empty(path)
            pending = decoder.getstate()[0]  # the start of a character cut off by the previous read
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as err:  # err.object is pending + data
                position = offset - len(pending) + err.start
                f.seek(max(0, position - 20))
                around = f.read(position - max(0, position - 20) + 20)
                raise _not_utf8(path, min(position, 20), err.reason, around, base=max(0, position - 20)) from None
            offset += len(data)
            if text:
                yield text
            if not data:
                return


def _empty(path: Path) -> CorpusError:
    return CorpusError(f"{path}: the file is empty; a corpus needs some text to learn characters from")


def _not_utf8(path: Path, index: int, reason: str, data: bytes, base: int = 0) -> CorpusError:
    """The error for `data[index]`, a byte that is not UTF-8; `data` starts at byte `base` of the file."""
    context = data[max(0, index - 20) : index + 20]
    return CorpusError(
        f"{path}: not UTF-8 text: byte {base + index} ({data[index]:#04x}) cannot be decoded ({reason}), "
        f"near {context!r}. Convert it first, e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}-utf8.txt`"
    )


def decode_utf8(data: bytes, name: str = "the text") -> str:
    """Bytes (an upload) as text, or the same CorpusError as a file: the byte offset of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _not_utf8(Path(name), err.start, err.reason, data) from None
