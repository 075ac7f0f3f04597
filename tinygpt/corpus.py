"""Reading a training text: the one place that turns a file into the corpus string, with errors that say why.

Only a regular file is read (a device such as /dev/zero or a pipe would hang, or be read twice), and a file
that is binary data is called that, not sent to a text-encoding converter. `check_text_file(path)` is the check
alone, for a front end that reads the file its own way (the demo's upload calls `read_corpus`).
"""

from __future__ import annotations

import codecs
import stat
from collections.abc import Iterator
from pathlib import Path


class CorpusError(ValueError):
    """A text file that cannot be a corpus: missing, not a regular file, empty, binary, or not UTF-8."""


def check_text_file(path: str | Path, what: str = "the text file itself") -> Path:
    """`path` if it is an existing regular file (or a link to one); else a one-line CorpusError saying what it is.
    Uses stat only: nothing is opened, so a pipe or a device cannot block."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except OSError as err:
        raise CorpusError(f"{path}: cannot be read ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise CorpusError(f"{path}: is a folder; give {what}")
    if not stat.S_ISREG(mode):
        kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise CorpusError(f"{path}: is {kind}, not a regular file; give {what} (save a stream to a file first)")
    return path


def read_corpus(path: str | Path) -> str:
    """The whole file as text, decoded as UTF-8 (the encoding the seed's `open(..., encoding="utf-8")` uses)."""
    return "".join(iter_corpus(path))


def iter_corpus(path: str | Path, chunk_bytes: int = 1 << 22) -> Iterator[str]:
    """The file's text in pieces of about `chunk_bytes` bytes, for corpora too big to hold as one string.

    Missing, non-regular, empty, binary and non-UTF-8 files raise a CorpusError (the byte offset of a decoding
    error counts from the start of the file); a character split between two reads is carried over, so the
    pieces join to the whole text.
    """
    path = check_text_file(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file handed to the decoder so far
    with path.open("rb") as f:
        while True:
            data = f.read(chunk_bytes)
            if not data and offset == 0:
                raise _empty(path)
            pending = decoder.getstate()[0]  # the start of a character cut off by the previous read
            if b"\0" in data:  # valid UTF-8, but no text holds NUL bytes
                raise _binary(path, offset + data.index(b"\0"), "a NUL byte (0x00)")
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as err:  # err.object is pending + data
                position = offset - len(pending) + err.start
                f.seek(max(0, position - 4096))
                around = f.read(position - max(0, position - 4096) + 4096)
                raise _not_utf8(path, min(position, 4096), err.reason, around, base=max(0, position - 4096)) from None
            offset += len(data)
            if text:
                yield text
            if not data:
                return


def _empty(path: Path) -> CorpusError:
    return CorpusError(f"{path}: the file is empty; a corpus needs some text to learn characters from")


def _binary(path: Path, position: int, what: str) -> CorpusError:
    return CorpusError(f"{path}: is binary data, not text: byte {position} is {what} (UTF-16 text looks like this "
                       "too); give a plain text file saved as UTF-8")


# Control characters that text in any 8-bit encoding hardly ever holds (tab, newlines, form feed and escape do).
_BINARY_BYTES = bytes(set(range(32)) - {9, 10, 11, 12, 13, 27}) + b"\x7f"


def _looks_binary(data: bytes) -> bool:
    return b"\0" in data or sum(data.count(b) for b in _BINARY_BYTES) > len(data) / 20


def _not_utf8(path: Path, index: int, reason: str, data: bytes, base: int = 0) -> CorpusError:
    """The error for `data[index]`, a byte that is not UTF-8; `data` starts at byte `base` of the file. Text in
    another encoding gets the command that converts it; binary data is called binary."""
    context = data[max(0, index - 20) : index + 20]
    sample = data[max(0, index - 4096) : index + 4096]
    what = f"{path}: not UTF-8 text: byte {base + index} ({data[index]:#04x}) cannot be decoded ({reason})"
    if _looks_binary(sample):
        return CorpusError(f"{what}: it is binary data, not text; give a plain text file saved as UTF-8")
    return CorpusError(
        f"{what}, near {context!r}. Convert it first, e.g. `iconv -f latin1 -t utf-8 {path.name} > "
        f"{path.stem}-utf8.txt`"
    )


def decode_utf8(data: bytes, name: str = "the text") -> str:
    """Bytes (an upload) as text, or the same CorpusError as a file: the byte offset of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _not_utf8(Path(name), err.start, err.reason, data) from None
