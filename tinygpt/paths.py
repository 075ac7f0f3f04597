"""Paths that mean the same from any working directory.

A run names local files in two ways. It *opens* them the way they were given (`--init-from /abs/model`,
`--dataset ../rows.jsonl`: relative to the working directory of the command, as a shell user expects). It
*records* them (trainer_state.json's "training_args", the card's reproduce command) relative to the project root
when they are inside it, else absolute, because the reproduce command runs from the project root
(`python train.py ...` of a tinygpt checkout). A recorded path read back later (a resumed run's settings, a card
built by `tinygpt push` from elsewhere) is opened from the project root again: `opened_path`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import is_local_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # where `python train.py` of the reproduce command runs
RECORDED_SOURCES = ("init_from", "dataset")  # settings that may name a local file or folder (else a Hub id)


def recorded_path(path) -> str:
    """`path` as a run records it: relative to the project root (where `python train.py` runs) when it is inside
    it, else absolute."""
    path = Path(path).expanduser()
    resolved = path.resolve()
    try:
        return resolved.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path) if path.is_absolute() else str(resolved)


def opened_path(recorded: str) -> str:
    """Where a path a run recorded (`recorded_path`) is on disk, from any working directory: relative to the
    project root, unless it names nothing there; a Hub id, or anything not found, is returned as it is."""
    if not recorded or Path(recorded).expanduser().is_absolute():
        return recorded
    in_project = PROJECT_ROOT / recorded
    if not in_project.exists():
        return recorded
    if Path(recorded).exists() and os.path.samefile(recorded, in_project):
        return recorded  # the same thing either way: keep the name (identifies prepared data, reads in messages)
    return str(in_project)


def is_local_source(name: str) -> bool:
    """Whether a recorded --init-from/--dataset names a local file or folder (not a Hub id), from any working
    directory: `common.is_local_path`, or a path that exists relative to the project root."""
    return is_local_path(name) or (not Path(name).is_absolute() and (PROJECT_ROOT / name).exists())


def sources_to_open(settings, resume_state: dict | None = None) -> dict:
    """{"init_from": ..., "dataset": ...}: how to open each of these settings, before they are recorded. A value
    given now is opened as given; the value a resumed run recorded (the same string as its saved setting) is
    opened from the project root (`opened_path`)."""
    saved = (resume_state or {}).get("settings") or {}
    sources = {}
    for name in RECORDED_SOURCES:
        value = getattr(settings, name)
        if value:
            sources[name] = opened_path(value) if value == saved.get(name) else value
    return sources


def record_sources(settings, sources: dict | None = None):
    """The settings with their local --init-from/--dataset as a run records them (`recorded_path` of where they
    are opened, `sources`: `sources_to_open`'s); Hub ids as they are."""
    import dataclasses

    sources = sources_to_open(settings) if sources is None else sources
    local = {name: recorded_path(source) for name, source in sources.items()
             if is_local_path(source) and Path(source).expanduser().exists()}
    return dataclasses.replace(settings, **local) if local else settings
