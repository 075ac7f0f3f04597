"""An output folder belongs to its user: a run writes into it only where no file of theirs would be replaced.

`train.py --out-dir DIR`, `tinygpt convert-seed --out DIR` and the demo's Train tab write a model folder. DIR may
be new, empty, a folder of a tinygpt run (continued with --resume, replaced with --overwrite) or any other folder
(`--out-dir .` in a project): there the run's files go beside the user's, and a user's file with the name of one
of them (their own README.md, loss.png, a config.json of something else) is never replaced unless --overwrite
says so; the run is refused before it starts, in one line naming those files.

What counts as a tinygpt run's: a config.json whose model_type is "tinygpt" (or one that cannot be read: a damaged
model, never silently someone else's), the resume state, or a trainer_state.json that train.py wrote (its
training_args hold the model's dimensions). In such a folder the run's file names are the run's; anywhere else
every existing file is the user's.

Leftovers: `--overwrite` builds the new folder beside the old one (`.NAME.tmp-*`) and swaps them; a kill in
between leaves that hidden sibling, which the next start removes and says so (`leftovers_note`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MODEL_TYPE = "tinygpt"


def folder_name(value: str) -> str:
    """argparse `type` for an output folder: an empty name would silently mean the working directory."""
    if not value.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not a folder name; give one (. is the current folder)")
    return value


def is_tinygpt_config(path: Path) -> bool:
    """A config.json of a tinygpt model, or one that cannot be read (then a damaged model: it is never taken for
    someone else's file, which would let a run write over it without --overwrite)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return path.is_file()
    return isinstance(config, dict) and config.get("model_type") == MODEL_TYPE


def is_tinygpt_trainer_state(path: Path) -> bool:
    """A trainer_state.json that train.py wrote (transformers' Trainer writes one too: without model dimensions)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    args = state.get("training_args") if isinstance(state, dict) else None
    return isinstance(args, dict) and all(k in args for k in ("n_layer", "n_embd", "block_size"))


def files_in_the_way(folder: Path, names) -> list[str]:
    """The files of `names` (what a run writes) that `folder` already holds and a tinygpt run did not write:
    none when the folder holds a tinygpt run's trainer_state.json (then they are that run's)."""
    if not folder.is_dir() or is_tinygpt_trainer_state(folder / "trainer_state.json"):
        return []
    return sorted(name for name in names if (folder / name).exists() or (folder / name).is_symlink())


def in_the_way_message(flag: str, folder: Path, names: list[str]) -> str:
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return (f"{flag} {folder} holds files of yours that the new model's files would replace ({shown}) and no "
            f"tinygpt model: choose a new or empty folder, move those files, or pass --overwrite to replace them")


def leftovers_note(out_dir: Path, removed: list[str], restored: str | None) -> str | None:
    """The one line that says what a start removed or put back (`checkpoint.remove_leftovers`), or None."""
    if restored:
        return (f"note: put the old model back at {out_dir} from {restored}, where an --overwrite that was killed "
                f"had moved it{f'; removed {len(removed)} staging folder(s) beside it' if removed else ''}")
    if removed:
        return (f"note: removed {', '.join(removed)} beside {out_dir}: left by an --overwrite that was killed "
                f"before it finished cleaning up; {out_dir} itself is whole")
    return None
