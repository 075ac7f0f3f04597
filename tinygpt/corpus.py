"""Reading a training text: the one place that turns a file into the corpus string, with errors that say why."""

from __future__ import annotations

from pathlib import Path


class CorpusError(ValueError):
    """A text file that cannot be a corpus: missing, empty, or not UTF-8."""


def read_corpus(path: str | Path) -> str:
    """The whole file as text, decoded as UTF-8 (the encoding the seed's `open(..., encoding="utf-8")` uses)."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if path.is_dir():
        raise CorpusError(f"{path}: is a folder; give the text file itself")
    data = path.read_bytes()
    if not data:
        raise CorpusError(f"{path}: the file is empty; a corpus needs some text to learn characters from")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        context = data[max(0, err.start - 20) : err.start + 20]
        raise CorpusError(
            f"{path}: not UTF-8 text: byte {err.start} ({data[err.start]:#04x}) cannot be decoded ({err.reason}), "
            f"near {context!r}. Convert it first, e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}-utf8.txt`"
        ) from None
