"""`--dataset NAME`: a Hugging Face `datasets` dataset (a Hub id or local files) as one training text.

The rows of the chosen split are read in order, streamed (`load_dataset(..., streaming=True)`), so a dataset
bigger than memory or disk cache trains: `data.prepare_ids` reads it twice (its characters, then its ids) into a
memory-mapped id file beside the run, once; a resumed run reuses that file. Each row's text is followed by a
newline, so a text file read by the `text` builder (one row per line) gives back the file itself.

`datasets` is an optional extra (`pip install "tinygpt[datasets]"`): it is imported only here, only when a run
asks for a dataset.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from .common import one_line
from .corpus import CorpusError
from .data import EncodedCorpus, prepare_ids

# Local files: extension -> the `datasets` builder that reads them.
BUILDERS = {
    ".txt": "text", ".text": "text", ".md": "text",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
    ".csv": "csv", ".tsv": "csv",
    ".parquet": "parquet",
}
ROWS_PER_BATCH = 10_000  # rows joined into one piece of text: numpy works on pieces, not on single short rows


def import_datasets():
    """The `datasets` module, or a one-line error saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise CorpusError('--dataset needs the `datasets` package: pip install "tinygpt[datasets]"') from None
    datasets.disable_progress_bars()
    return datasets


@contextlib.contextmanager
def quiet_reading():
    """While a dataset is read: no log lines from `datasets` ("Failed to load JSON from file ...") or from
    huggingface_hub ("Retrying in 8s"). Every failure is raised and said once, in our one line."""
    loggers = [logging.getLogger(name) for name in ("datasets", "huggingface_hub")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def read_error(name: str, err: BaseException, found=None) -> CorpusError:
    """The one line for a dataset that cannot be read, naming it (and what else it is not)."""
    where = "" if found else " (not a local file or folder either)"
    if isinstance(err, StopIteration) or "StopIteration" in str(err):  # a reader that found not even one row
        return CorpusError(f"--dataset {name}{where}: no rows to read (an empty file?)")
    return CorpusError(f"--dataset {name}{where}: cannot read it: {one_line(err)}")


def local_files(name: str) -> tuple[str, list[str]] | None:
    """(builder, files) when `name` is a local file or a folder of data files; None when it is not on disk."""
    path = Path(name).expanduser()
    if not path.exists():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(path).parts)) if path.is_dir() else [path]
    kinds = {BUILDERS.get(p.suffix.lower()) for p in files}
    known = ", ".join(sorted(BUILDERS))
    if None in kinds:
        odd = next(p for p in files if p.suffix.lower() not in BUILDERS)
        raise CorpusError(f"--dataset {name}: {odd.name} is not a data file this can read (extensions: {known})")
    if len(kinds) != 1:
        raise CorpusError(f"--dataset {name}: the folder mixes file kinds ({', '.join(sorted(kinds))}); "
                          "give one kind at a time")
    empty = next((p for p in files if p.stat().st_size == 0), None)
    if empty is not None:  # the readers infer the columns from the first rows: an empty file has none
        what = "the file" if empty == path else f"{empty.relative_to(path).as_posix()} in it"
        raise CorpusError(f"--dataset {name}: {what} is empty (no rows); give files with some text in them")
    return kinds.pop(), [str(p.resolve()) for p in files]


def dataset_source(name: str, config: str | None, split: str, text_column: str) -> dict:
    """What identifies the text, for reusing prepared ids: the names, and each local file's size and time."""
    source = {"dataset": name, "config": config, "split": split, "text_column": text_column}
    found = local_files(name)
    if found:
        source["files"] = [[f, Path(f).stat().st_size, Path(f).stat().st_mtime_ns] for f in found[1]]
    return source


def open_dataset(name: str, config: str | None, split: str):
    """The split as a streaming `IterableDataset`; errors become one CorpusError line."""
    datasets = import_datasets()
    found = local_files(name)
    try:
        with quiet_reading():
            if found:
                builder, files = found
                options = {"delimiter": "\t"} if builder == "csv" and files[0].lower().endswith(".tsv") else {}
                return datasets.load_dataset(builder, data_files={split: files}, split=split, streaming=True,
                                             **options)
            return datasets.load_dataset(name, config, split=split, streaming=True)
    except (ValueError, OSError, ImportError, datasets.exceptions.DatasetNotFoundError) as err:
        where = "" if found else " (not a local file or folder either)"
        raise CorpusError(f"--dataset {name}{where}: {one_line(err)}") from None
    except Exception as err:  # whatever else a reader raises (StopIteration for no rows): one line, not its traceback
        raise read_error(name, err, found) from None


def iter_text(dataset, name: str, text_column: str) -> Iterator[str]:
    """The split's rows, each followed by a newline, joined into pieces of ROWS_PER_BATCH rows (an empty value
    is an empty row). Batches stay Arrow tables: converting every row to a Python dict costs 40x more time."""
    try:
        with quiet_reading():
            yield from _text_pieces(dataset, name, text_column)
    except CorpusError:
        raise
    except Exception as err:  # a broken row, a garbage file, a lost connection: one line naming the dataset
        raise read_error(name, err, found=True) from None


def _text_pieces(dataset, name: str, text_column: str) -> Iterator[str]:
    import pyarrow as pa

    for table in dataset.with_format("arrow").iter(batch_size=ROWS_PER_BATCH):
        if text_column not in table.column_names:
            raise CorpusError(f"--dataset {name}: no column {text_column!r}; it has "
                              f"{', '.join(map(repr, table.column_names))}. Choose one with --text-column")
        column = table.column(text_column)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise CorpusError(f"--dataset {name}: column {text_column!r} holds {column.type} values, not text; "
                              "choose another with --text-column")
        if len(column):
            yield "\n".join(row or "" for row in column.to_pylist()) + "\n"


def dataset_corpus(name: str, config: str | None, split: str, text_column: str, folder: Path,
                   base_chars=()) -> EncodedCorpus:
    """The dataset's text as memory-mapped ids in `folder` (prepared once, reused while the source is the same)."""
    source = dataset_source(name, config, split, text_column)
    return prepare_ids(lambda: iter_text(open_dataset(name, config, split), name, text_column), folder, source,
                       name, base_chars)
