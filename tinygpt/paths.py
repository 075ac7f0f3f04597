"""How a run records the paths it is given (trainer_state.json's "training_args", the card's reproduce command):
relative to the project root when they are inside it, else absolute, because the reproduce command runs from the
project root (`python train.py ...` of a tinygpt checkout)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .common import is_local_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # where `python train.py` of the reproduce command runs
RECORDED_SOURCES = ("init_from", "dataset")  # settings that may name a local file or folder (else a Hub id)


def recorded_path(path) -> str:
    """`path` as a run records it: relative to the project root (where `python train.py` runs) when it is inside
    it, else absolute."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path) if Path(path).is_absolute() else str(resolved)


def record_sources(settings):
    """The settings with their local --init-from/--dataset as a run records them (`recorded_path`); Hub ids as they
    are."""
    local = {name: recorded_path(getattr(settings, name)) for name in RECORDED_SOURCES
             if getattr(settings, name) and is_local_path(getattr(settings, name))
             and Path(getattr(settings, name)).exists()}
    return dataclasses.replace(settings, **local) if local else settings
