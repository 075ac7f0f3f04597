"""Checkpoints of a training run: the whole output folder replaced file by file, atomically, and the resume state.
(`replace_folder` swaps a whole folder at once instead: `tinygpt convert-seed --overwrite` and the first save of
`train.py --overwrite`, so the old model stays until a complete new one takes its place in one move.)

The output folder is always a loadable `save_pretrained` folder. A checkpoint is first written in full to a
staging folder inside it (`.tmp-checkpoint/`, same filesystem), every file flushed to disk, and only then moved
into place with `os.replace` (atomic per file) and the folder itself fsync'd. So a crash, a SIGKILL or a full
disk at any instant leaves each file either the old one or the new one, never a torn one, and while the
staging folder is being written nothing in the folder changes at all.

Within a run the model's shapes never change, so a folder whose files come from two neighbouring checkpoints
still loads. A run's first save moves its resume state in first and config.json last, so a kill at any instant
leaves a folder that resumes, or one that holds no model at all (nothing to refuse or to overwrite).
Whatever a serialiser raises while writing (an OSError, safetensors' SafetensorError, torch's "unexpected pos"
RuntimeError on a full disk) comes out as one CheckpointError, its errno found where the serialiser hid it. `--resume` reads only `training_state.pt`: one self-contained file with the step, the weights, the
optimizer, the sampling and dropout random states of every process and the log, so the resume state can never
be a mix of two steps either.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from .output_folder import files_in_the_way, in_the_way_message, is_tinygpt_config, leftovers_note

TRAINING_STATE_NAME = "training_state.pt"
STAGING_NAME = ".tmp-checkpoint"
# Files that exist only to resume training: `tinygpt push` leaves them out unless asked.
TEXT_NAME = "train.txt"  # a text given in memory (the demo's), kept for --data
RESUME_FILES = (TRAINING_STATE_NAME, TEXT_NAME)
# Moved into place last, in this order: config.json completes a loadable model only once its weights, code and
# tokenizer are there, and the resume state follows the model it describes.
LAST = ("config.json", "trainer_state.json", "loss.png", "README.md", TRAINING_STATE_NAME)
# A run's first save: the resume state first (from then on the folder resumes), config.json last (from then on
# it loads); killed before the resume state, the folder holds no model and the same command starts afresh.
FIRST_SAVE_FIRST, FIRST_SAVE_LAST = (TRAINING_STATE_NAME,), ("trainer_state.json", "loss.png", "README.md",
                                                             "config.json")
STATE_FORMAT = 1
# Files of a trained folder: what --overwrite replaces (everything else in the folder is carried over).
OUTPUT_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "configuration_tinygpt.py", "modeling_tinygpt.py",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenization_tinygpt.py",
    "trainer_state.json", "loss.png", "README.md", *RESUME_FILES,
)


class CheckpointError(OSError):
    """Saving or reading a checkpoint failed; the message says what survived. A failed write has the errno of
    the cause where one is known (`errno`, `strerror`), whatever the serialiser wrapped it in."""

    @classmethod
    def saying(cls, message: str, cause: OSError) -> CheckpointError:
        """`message` as the whole text, with the errno of `cause` kept (so callers can still tell a full disk)."""
        err = cls(message)
        err.errno = cause.errno
        return err


def write_checkpoint(out_dir: Path, write_files: Callable[[Path], None], first: bool = False) -> list[str]:
    """Let `write_files(staging)` write a full checkpoint, then move its files into `out_dir` atomically.

    `first`: the run's first save into this folder (see FIRST_SAVE_FIRST). Returns the names of the files
    written. On any error while writing (e.g. a full disk) the staging folder is removed, `out_dir` is exactly
    as before and a CheckpointError (`write_error`) propagates for the caller to describe.
    """
    staging = out_dir / STAGING_NAME
    with write_errors(out_dir):
        if staging.exists():  # left by a run that was killed while saving
            shutil.rmtree(staging)
        staging.mkdir()
    stage_files(staging, write_files)
    names = sorted(p.name for p in staging.iterdir())
    if first:
        head = [n for n in FIRST_SAVE_FIRST if n in names]
        tail = [n for n in FIRST_SAVE_LAST if n in names]
    else:
        head, tail = [], [n for n in LAST if n in names]
    ordered = head + [n for n in names if n not in head and n not in tail] + tail
    with write_errors(out_dir):
        for name in ordered:
            os.replace(staging / name, out_dir / name)
        fsync_dir(out_dir)
        staging.rmdir()
    return ordered


def stage_files(staging: Path, write_files: Callable[[Path], None], whole_folder: bool = False) -> None:
    """Let `write_files(staging)` write into `staging`, give every file the usual permissions (some writers, such
    as safetensors, create 0600 files) and flush it to disk; `whole_folder`: the folder itself too, as it will
    take another folder's place. On any error `staging` is removed and a CheckpointError propagates."""
    try:
        with write_errors(staging):
            write_files(staging)
            umask = _umask()
            for path in sorted(staging.rglob("*")):
                if path.is_file():
                    os.chmod(path, 0o666 & ~umask)
                    fsync_file(path)
            if whole_folder:
                os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes 0700; a folder train.py makes has the usual mode
                fsync_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextmanager
def write_errors(folder: Path) -> Iterator[None]:
    """Whatever writing into `folder` raises (an Exception, not a kill or Ctrl-C) becomes a CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except Exception as err:
        raise write_error(err, folder) from err


def write_error(err: BaseException, folder: Path | None = None) -> CheckpointError:
    """A CheckpointError with the errno behind `err`: an OSError's own, one in its cause or context (torch.save
    to a file object raises RuntimeError("unexpected pos ...") from the OSError), "(os error 28)" in
    safetensors' message, or, when nothing says, ENOSPC if `folder`'s disk has no space left."""
    code = _errno_of(err)
    if code is None and folder is not None and _no_space_left(folder):
        code = errno.ENOSPC
    if code is not None:
        return CheckpointError(code, os.strerror(code))
    text = str(err).strip()
    return CheckpointError(f"{type(err).__name__}: {text.splitlines()[0] if text else 'no message'}")


def _errno_of(err: BaseException | None) -> int | None:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno:
            return err.errno
        found = re.search(r"\(os error (\d+)\)|\[Errno (\d+)\]", str(err))
        if found:
            return int(found.group(1) or found.group(2))
        err = err.__cause__ or err.__context__
    return None


def _no_space_left(folder: Path) -> bool:
    for path in (folder, *folder.parents):
        try:
            stats = os.statvfs(path)
        except (OSError, AttributeError):  # gone already, or Windows
            continue
        return stats.f_bavail * stats.f_frsize < 64 * 1024
    return False


def describe_write_error(err: OSError) -> str:
    """'disk full: No space left on device', 'write failed: Read-only file system', ..."""
    return f"{'disk full' if is_disk_full(err) else 'write failed'}: {err.strerror or err}"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_folder(out_dir: Path, write_files: Callable[[Path], None],
                   carry: Callable[[str], bool] | None = None) -> None:
    """Let `write_files(staging)` fill a new folder, then put it at `out_dir` in one step.

    The staging folder is a hidden sibling (same filesystem), its files written in full, given the usual
    permissions and flushed to disk (`stage_files`, as train.py's checkpoints); `carry(name)`: entries of the
    old folder to keep, hard-linked (else copied) into the new one. Only then does it take `out_dir`'s place: an
    atomic exchange of the two folders where the system has one (Linux), else two renames (a crash between them
    leaves both folders, under hidden names, and nothing half-written). The old folder is removed after. On an
    error while writing, the staging folder is removed, `out_dir` is exactly as before and a CheckpointError
    propagates. Hidden siblings left by a process killed in here are removed first.
    """
    out_dir = Path(os.path.realpath(out_dir))  # a symbolic link keeps pointing at the (new) folder
    parent = out_dir.parent
    with write_errors(parent):
        parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    stage_files(staging, write_files, whole_folder=True)
    try:
        with write_errors(staging):
            if carry is not None and out_dir.is_dir():
                for entry in sorted(out_dir.iterdir()):
                    if carry(entry.name):
                        _link_copy(entry, staging / entry.name)
                fsync_dir(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = staging.with_name(staging.name.replace(".tmp-", ".old-", 1))
    with write_errors(parent):
        if not out_dir.exists():
            os.rename(staging, out_dir)
        elif _exchange(staging, out_dir):
            old = staging  # now the old folder
        else:  # killed between these two, `remove_leftovers` puts the old folder back
            os.rename(out_dir, old)
            os.rename(staging, out_dir)
    # The new folder is in place: what follows is cleaning up (a leftover is removed next time).
    shutil.rmtree(old, ignore_errors=True)
    try:
        fsync_dir(parent)
    except OSError:
        pass


def remove_leftovers(out_dir: Path) -> tuple[list[str], str | None]:
    """Remove the hidden siblings `replace_folder` leaves when killed: a staged new folder that never took
    `out_dir`'s place, or the old folder it replaced; `out_dir` is the folder to keep. Where the system cannot
    exchange two folders and the kill fell between the two renames, the old folder is put back first.
    Returns (the names removed, the name the old folder was put back from or None), for `leftovers_note`."""
    real = Path(os.path.realpath(out_dir))
    name = glob.escape(real.name)
    old = sorted(real.parent.glob(f".{name}.old-*"))
    restored = None
    if old and not real.exists():
        os.rename(old[-1], real)
        restored = old[-1].name
    removed = []
    for leftover in sorted([*real.parent.glob(f".{name}.tmp-*"), *real.parent.glob(f".{name}.old-*")]):
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover.name)
    return removed, restored


def clean_leftovers(out_dir, say: Callable[[str], None] = print) -> str | None:
    """`remove_leftovers` at a command's start, before anything else looks at the folder; `say` is given the line
    that tells what it did. Returns that line, None if nothing was left (or nothing could be done: the command's
    own checks of the folder then say why)."""
    try:
        note = leftovers_note(Path(out_dir), *remove_leftovers(Path(out_dir)))
    except OSError:
        return None
    if note:
        say(note)
    return note


def _link_copy(source: Path, target: Path) -> None:
    """`source` (a file, link or folder) at `target` too: hard links where the filesystem has them, else copies."""
    def link(src, dst):
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)

    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, copy_function=link)
    else:
        link(source, target)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False where that is not available."""
    if sys.platform != "linux":
        return False
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # a C library older than glibc 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the filesystem or kernel cannot exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


def fsync_file(path: Path) -> None:
    """Flush a written file's data to the disk (a full disk can still surface here, on network filesystems)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames inside `path` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def save_training_state(path: Path, state: dict) -> None:
    """`torch.save` of plain containers and tensors only, so `torch.load(..., weights_only=True)` reads it.
    Through a Python file object, so a full disk keeps its OSError (as the context of torch's RuntimeError)."""
    with open(path, "wb") as f:
        torch.save({"format": STATE_FORMAT, **state}, f)


def load_training_state(out_dir: Path) -> dict:
    """The resume state of `out_dir`, read with `weights_only=True` (no code runs while loading)."""
    path = out_dir / TRAINING_STATE_NAME
    if not path.is_file():
        what = "a model but no" if (out_dir / "config.json").is_file() else "no"
        raise CheckpointError(
            f"--resume: {out_dir} holds {what} {TRAINING_STATE_NAME}, so there is no training run to continue "
            f"(start one with --out-dir {out_dir}{' --overwrite' if what != 'no' else ''})"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: pickle, zip and torch errors vary
        raise CheckpointError(
            f"--resume: {path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            + ("the model beside it is untouched (copy the folder elsewhere to keep it), but the run cannot continue "
               "exactly: start again with --overwrite" if (out_dir / "config.json").is_file() else
               "start again with --overwrite")
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"--resume: {path} is not a tinygpt resume state (format {STATE_FORMAT})")
    return state


# Random number generator states, as tensors (what weights_only loading accepts).


def capture_rng(device: torch.device, sampler: torch.Generator) -> dict:
    """This process's random state: the batch sampler's generator and torch's global generators (dropout)."""
    state = {"sampler": sampler.get_state(), "cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng(state: dict, device: torch.device, sampler: torch.Generator) -> None:
    sampler.set_state(state["sampler"])
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


# The output folder before the first checkpoint.


def holds_model(out_dir: Path) -> bool:
    """Does the folder hold a tinygpt model or a run's resume state (what --overwrite is needed to replace)? A
    config.json of another kind of model or program is not one: it is a file of the user's (`output_folder`)."""
    return out_dir.is_dir() and (is_tinygpt_config(out_dir / "config.json")
                                 or (out_dir / TRAINING_STATE_NAME).exists())


def run_file_names(writes_text: bool = False) -> list[str]:
    """What a run writes into its output folder (train.txt only for a text given in memory)."""
    return [name for name in OUTPUT_FILES if writes_text or name != TEXT_NAME]


def prepare_out_dir(out_dir: Path, resume: bool, overwrite: bool, is_main: bool, writes_text: bool = False) -> bool:
    """Refuse to overwrite a model, or a file of the user's, silently, and check the folder can be written before
    training starts. `writes_text`: the run saves its text (given in memory) as train.txt.

    Returns whether the folder was created here (so a run that fails to start can remove it again).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"--out-dir {out_dir} is a file; give a folder (it will be created if missing)")
    if is_main:
        try:
            remove_leftovers(out_dir)  # of an --overwrite save that was killed (train.py says so: clean_leftovers)
        except OSError as err:
            raise CheckpointError(f"--out-dir {out_dir} is not writable: {err.strerror or err}") from None
    has_run = holds_model(out_dir)
    if has_run and not resume and not overwrite:
        step = saved_step(out_dir)
        what = "a model" if (out_dir / "config.json").exists() else "an unfinished first save of a run"
        raise CheckpointError(
            f"--out-dir {out_dir} already holds {what}{f' (step {step})' if step is not None else ''}: continue "
            "it with --resume, replace it with --overwrite, or choose another --out-dir"
        )
    if has_run and overwrite and not resume:
        check_swappable(out_dir)
    if not has_run and not resume and not overwrite:
        in_the_way = files_in_the_way(out_dir, run_file_names(writes_text))
        if in_the_way:
            raise CheckpointError(in_the_way_message("--out-dir", out_dir, in_the_way))
    if not is_main:
        return False
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f"{STAGING_NAME}-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CheckpointError(f"--out-dir {out_dir} is not writable: {err.strerror or err}") from None
    return created


def check_swappable(out_dir: Path) -> None:
    """--overwrite swaps the whole folder (`replace_folder`): not possible for a mount point, and the working
    directory would be left pointing at the deleted old folder."""
    real = Path(os.path.realpath(out_dir))
    if os.path.ismount(real):
        raise CheckpointError(f"--out-dir {out_dir} is a mount point, which --overwrite cannot swap for the new "
                              "model in one move; use a folder inside it")
    cwd = Path(os.path.realpath(Path.cwd()))
    if cwd == real or real in cwd.parents:
        raise CheckpointError(f"--out-dir {out_dir} holds the working directory, which --overwrite would replace; "
                              "run from outside it")


def carried_over(name: str) -> bool:
    """What an --overwrite save keeps of the old folder: everything that is not a file of the old model."""
    return name not in OUTPUT_FILES and name != STAGING_NAME and not name.startswith(f"{STAGING_NAME}-probe-")


def model_files_problem(out_dir: Path, state: dict) -> str | None:
    """What is wrong with the model files of a folder whose resume state is `state`, or None if they are whole
    and of the same step: a missing or unreadable file, weights that are not the resume state's."""
    from safetensors import safe_open

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "trainer_state.json"):
        try:
            json.loads((out_dir / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, ValueError) as err:
            return f"{name} cannot be read ({type(err).__name__})"
    for name in ("configuration_tinygpt.py", "modeling_tinygpt.py"):
        try:
            compile((out_dir / name).read_bytes(), name, "exec")
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, ValueError, SyntaxError) as err:
            return f"{name} cannot be read ({type(err).__name__})"
    step = saved_step(out_dir)
    if step != state["step"]:
        return f"trainer_state.json is of step {step}, the resume state of step {state['step']}"
    model = state.get("best_model") or state["model"]  # --keep best: the folder's model is the best step's
    try:
        with safe_open(out_dir / "model.safetensors", framework="pt") as weights:
            for key in weights.keys():
                expected = model.get(key)
                if expected is None or not torch.equal(weights.get_tensor(key), expected):
                    return f"model.safetensors's {key} is not the resume state's"
    except FileNotFoundError:
        return "model.safetensors is missing"
    except Exception as err:  # noqa: BLE001 - a truncated or damaged file: safetensors' errors vary
        return f"model.safetensors cannot be read ({type(err).__name__})"
    return None


def saved_step(out_dir: Path) -> int | None:
    from .run_state import RunState

    try:
        state = RunState.load(out_dir)
    except (OSError, ValueError):
        return None
    return state.global_step if state is not None else None


def describe_save_error(out_dir: Path, step: int, kept_step: int | None, err: OSError) -> str:
    fix = "Free some space" if is_disk_full(err) else "Fix that"
    if kept_step is None:  # nothing of this run is in the folder: what was there before still is
        return (f"could not save step {step} to {out_dir} ({describe_write_error(err)}); nothing was changed in the "
                f"folder. {fix} and run the command again")
    return (f"could not save step {step} to {out_dir} ({describe_write_error(err)}); the previous checkpoint (step "
            f"{kept_step}) is intact. {fix} and continue with --resume")
