"""Checkpoints of a training run: the whole output folder replaced file by file, atomically, and the resume state.
(`replace_folder` swaps a whole folder at once instead, for `tinygpt convert-seed --overwrite`.)

The output folder is always a loadable `save_pretrained` folder. A checkpoint is first written in full to a
staging folder inside it (`.tmp-checkpoint/`, same filesystem), every file flushed to disk, and only then moved
into place with `os.replace` (atomic per file) and the folder itself fsync'd. So a crash, a SIGKILL or a full
disk at any instant leaves each file either the old one or the new one, never a torn one, and while the
staging folder is being written nothing in the folder changes at all.

Within a run the model's shapes never change, so a folder whose files come from two neighbouring checkpoints
still loads. `--resume` reads only `training_state.pt`: one self-contained file with the step, the weights, the
optimizer, the sampling and dropout random states of every process and the log, so the resume state can never
be a mix of two steps either.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

TRAINING_STATE_NAME = "training_state.pt"
STAGING_NAME = ".tmp-checkpoint"
# Files that exist only to resume training: `tinygpt push` leaves them out unless asked.
RESUME_FILES = (TRAINING_STATE_NAME, "train.txt")  # train.txt: a text given in memory (the demo's), kept for --data
# Moved into place last, in this order: config.json completes a loadable model only once its weights, code and
# tokenizer are there, and the resume state follows the model it describes.
LAST = ("config.json", "trainer_state.json", "loss.png", "README.md", TRAINING_STATE_NAME)
STATE_FORMAT = 1
# Files of a trained folder; --overwrite removes them (config.json first) just before the new run's first save.
OUTPUT_FILES = (
    "config.json", "generation_config.json", "model.safetensors", "configuration_tinygpt.py", "modeling_tinygpt.py",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenization_tinygpt.py",
    "trainer_state.json", "loss.png", "README.md", *RESUME_FILES,
)


class CheckpointError(OSError):
    """Saving or reading a checkpoint failed; the message says what survived."""


def write_checkpoint(out_dir: Path, write_files: Callable[[Path], None]) -> list[str]:
    """Let `write_files(staging)` write a full checkpoint, then move its files into `out_dir` atomically.

    Returns the names of the files written. On any error while writing (e.g. a full disk) the staging folder is
    removed and `out_dir` is exactly as before; the OSError propagates for the caller to describe.
    """
    staging = out_dir / STAGING_NAME
    if staging.exists():  # left by a run that was killed while saving
        shutil.rmtree(staging)
    staging.mkdir()
    stage_files(staging, write_files)
    names = sorted(p.name for p in staging.iterdir())
    ordered = [n for n in names if n not in LAST] + [n for n in LAST if n in names]
    for name in ordered:
        os.replace(staging / name, out_dir / name)
    fsync_dir(out_dir)
    staging.rmdir()
    return ordered


def stage_files(staging: Path, write_files: Callable[[Path], None], whole_folder: bool = False) -> None:
    """Let `write_files(staging)` write into `staging`, give every file the usual permissions (some writers, such
    as safetensors, create 0600 files) and flush it to disk; `whole_folder`: the folder itself too, as it will
    take another folder's place. On any error `staging` is removed and the error propagates."""
    try:
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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_folder(out_dir: Path, write_files: Callable[[Path], None]) -> None:
    """Let `write_files(staging)` fill a new folder, then put it at `out_dir` in one step.

    The staging folder is a hidden sibling (same filesystem), its files written in full, given the usual
    permissions and flushed to disk (`stage_files`, as train.py's checkpoints); only then does
    it take `out_dir`'s place: an atomic exchange of the two folders where the system has one (Linux), else two
    renames (a crash between them leaves both folders, under hidden names, and nothing half-written). On an
    error while writing, the staging folder is removed and `out_dir` is exactly as before.
    """
    parent = out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    stage_files(staging, write_files, whole_folder=True)
    if not out_dir.exists():
        os.rename(staging, out_dir)
    elif _exchange(staging, out_dir):
        shutil.rmtree(staging)  # now the old folder
    else:
        old = staging.with_name(staging.name.replace(".tmp-", ".old-", 1))
        os.rename(out_dir, old)
        os.rename(staging, out_dir)
        shutil.rmtree(old)
    fsync_dir(parent)


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
    """`torch.save` of plain containers and tensors only, so `torch.load(..., weights_only=True)` reads it."""
    torch.save({"format": STATE_FORMAT, **state}, path)


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
            "start again with --overwrite"
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


def prepare_out_dir(out_dir: Path, resume: bool, overwrite: bool, is_main: bool) -> bool:
    """Refuse to overwrite a model silently, and check the folder can be written before training starts.

    Returns whether the folder was created here (so a run that fails to start can remove it again).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"--out-dir {out_dir} is a file; give a folder (it will be created if missing)")
    has_run = out_dir.is_dir() and any((out_dir / name).exists() for name in ("config.json", TRAINING_STATE_NAME))
    if has_run and not resume and not overwrite:
        step = saved_step(out_dir)
        raise CheckpointError(
            f"--out-dir {out_dir} already holds a model{f' (step {step})' if step is not None else ''}: continue it "
            "with --resume, replace it with --overwrite, or choose another --out-dir"
        )
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


def remove_old_model(out_dir: Path) -> None:
    """--overwrite, at the new run's first save. Without its config.json first, the folder is briefly "no model"
    rather than new weights under an old config of other dimensions."""
    for name in OUTPUT_FILES:  # config.json first
        (out_dir / name).unlink(missing_ok=True)


def saved_step(out_dir: Path) -> int | None:
    from .run_state import RunState

    try:
        state = RunState.load(out_dir)
    except (OSError, ValueError):
        return None
    return state.global_step if state is not None else None


def describe_save_error(out_dir: Path, step: int, kept_step: int | None, err: OSError) -> str:
    kept = f"the previous checkpoint (step {kept_step})" if kept_step is not None else "the folder"
    full = is_disk_full(err)
    return (
        f"could not save step {step} to {out_dir} ({'disk full' if full else 'write failed'}: "
        f"{err.strerror or err}); {kept} is intact. {'Free some space' if full else 'Fix that'} and continue "
        "with --resume"
    )
