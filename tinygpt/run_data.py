"""The text a run trains on: read once (a text in memory, a file, or a `datasets` dataset), split the seed's way
(first 90 % train, last 10 % val), and described for trainer_state.json's "data".

`read_run_data` is all the engine asks of the data; the ids themselves come from `tinygpt.data` (in memory, or a
memory-mapped id file prepared once beside the run for a dataset or a --data file of MEMMAP_MIN_BYTES or more).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import data as data_module
from .corpus import iter_corpus
from .data import (
    PREPARED_DIR, check_split_lengths, encode_corpus, encode_text, file_source, prepare_ids, val_repeats_train,
)
from .paths import recorded_path
from .settings import TrainingSettings

TEXT_FILE_NAME = "train.txt"  # a text given in memory, saved beside the model so the run can be repeated/resumed


@dataclass
class RunData:
    """A run's text as ids, split, and what the run records about it."""

    train: torch.Tensor  # the first 90 % of the ids
    val: torch.Tensor  # the last 10 %
    chars: list[str]  # chars[i] is the character with id i: the vocabulary
    name: str | Path  # how messages name the text (its file, or the name of a text given in memory)
    info: dict  # trainer_state.json's "data": {"name", "path", "characters", "vocab_size", "val_repeats_train", ...}
    fingerprint: str  # a sha256 of the text: what a resumed run checks it continues on
    text: str | None  # a text given in memory: saved as train.txt at the run's first save
    path: Path | None  # the --data file, absolute (None for a text in memory or a dataset)
    repeats: float  # the share of val passages found in the training part (`data.val_repeats_train`)


def read_run_data(settings: TrainingSettings, out_dir: Path, run_name: str, accelerator, *, text: str | None = None,
                  data_path=None, data_name: str | None = None, base_chars=(), dataset: str | None = None) -> RunData:
    """The text of `text=`, `data_path=` or the dataset setting, as ids; the vocabulary is every character of it,
    after `base_chars` (a fine-tune's base vocabulary). `dataset` is where the dataset setting is opened from (it is
    recorded from the project root: `paths.sources_to_open`). Too short a text raises CorpusError (a ValueError)."""
    corpus = _read_corpus(settings, out_dir, accelerator, text, data_path, data_name, base_chars,
                          dataset or settings.dataset)
    train, val = corpus.split()
    check_split_lengths(train, val, settings.block_size, corpus.path)
    repeats = val_repeats_train(train, val, settings.block_size)
    info = {
        "name": Path(data_path).name if data_path is not None else settings.dataset or data_name or "text",
        # How the reproduce command names the text: its path from the project root (else its absolute path),
        # or the copy saved in the folder for a text given in memory (a dataset names itself: no path).
        "path": recorded_path(data_path) if data_path is not None
        else None if settings.dataset else f"{run_name}/{TEXT_FILE_NAME}",
        "characters": len(corpus), "vocab_size": len(corpus.chars),
        "val_repeats_train": round(repeats, 4),
    }
    if base_chars:  # a fine-tune's vocabulary starts with the base model's characters
        info["base_vocab_size"] = len(base_chars)
    return RunData(train, val, corpus.chars, corpus.path, info, corpus.fingerprint(), text,
                   Path(data_path).resolve() if data_path is not None else None, repeats)


def _read_corpus(settings, out_dir, accelerator, text, data_path, data_name, base_chars, dataset):
    """The text as ids: in memory, or memory-mapped from an id file prepared once beside the run (a dataset, or a
    --data file of MEMMAP_MIN_BYTES or more); the main process prepares it, the others then reuse it."""
    if text is not None:
        return encode_text(text, data_name or "the text", base_chars=base_chars)
    folder = out_dir / PREPARED_DIR
    if settings.dataset:
        from .datasets_source import dataset_corpus

        with accelerator.main_process_first():
            return dataset_corpus(dataset, settings.dataset_config, settings.dataset_split or "train",
                                  settings.text_column or "text", folder, base_chars)
    path = Path(data_path)
    if path.is_file() and path.stat().st_size >= data_module.MEMMAP_MIN_BYTES:
        with accelerator.main_process_first():
            return prepare_ids(lambda: iter_corpus(path), folder, file_source(path), path, base_chars)
    return encode_corpus(path, base_chars=base_chars)
