"""Resuming a run: every check first, then the saved state taken back, so the run continues as if never stopped.

train.py --resume and a notebook's `Trainer.resume(out_dir, ...)` take the same path, with the same checks and
messages:

1. `open_run` (before anything is built): the folder exists and holds a readable resume state
   (training_state.pt); --init-from, if given, is the model the run started from; the settings are the saved
   ones under the explicit changes (defaults < saved < preset < changes), and the model's dimensions are the
   saved ones; the text is found (the one given, the file the run recorded, or its train.txt); and what is
   wrong, if anything, with the model files beside the resume state (`damage`: the engine rewrites them).
2. `check_same_text` (once the text is read): the same characters always (the vocabulary), the same text
   unless `data_changed`, which trainer_state.json's "data" then records.
3. `restore` (once the trainer is built): optimizer, gradient scaler, every process's random streams, the log,
   the best weights (keep=best) and the time so far. The learning-rate schedule is rebuilt at the step
   (`lr_schedule.lr_scheduler`), so checkpoints written before it was a torch scheduler resume the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_training_state, model_files_problem, restore_rng
from .paths import recorded_path
from .run_data import TEXT_FILE_NAME, RunData
from .run_state import RunState
from .settings import MODEL_DIMS, TrainingError, TrainingSettings, flag_name


@dataclass
class ResumePoint:
    """A saved run, checked and ready to continue (`open_run`)."""

    out_dir: Path
    state: dict  # the resume state (training_state.pt, `checkpoint.load_training_state`)
    settings: TrainingSettings  # the saved settings under the changes asked for
    data_path: Path | None  # the text to read: None for a text given in memory or a dataset
    data_name: str | None  # how messages name it
    damage: str | None  # what is wrong with the model files beside the resume state; None if they are whole


def open_run(out_dir, changes: dict | None = None, *, data_path=None, text: str | None = None) -> ResumePoint:
    """The run saved in `out_dir`, to continue with `changes` (explicit settings: flags, or keyword arguments) on
    its own text unless `data_path`/`text` gives one. Raises TrainingError/CheckpointError naming what to do."""
    out_dir, changes = Path(out_dir), dict(changes or {})
    if not out_dir.is_dir():
        raise TrainingError(f"--resume: {out_dir} does not exist; there is no run to continue")
    state = load_training_state(out_dir)
    saved = state["settings"]
    init_from = changes.get("init_from")
    if init_from and recorded_path(init_from) != saved.get("init_from") and init_from != saved.get("init_from"):
        raise TrainingError(f"--resume: {out_dir} was started from {saved.get('init_from') or 'scratch'}, not "
                            f"--init-from {init_from}; leave --init-from out to continue it")
    settings = TrainingSettings.resolve(changes, saved=saved)
    # A dimension differs because a change asked for it or because a preset brought it (then it is not a change).
    changed = [f"{flag_name(k)} {getattr(settings, k)}{'' if k in changes else f' (from --preset {settings.preset})'}"
               f" (saved: {saved.get(k)})" for k in MODEL_DIMS if getattr(settings, k) != saved.get(k)]
    if changed:
        raise TrainingError(
            f"--resume: {out_dir} holds a model of different dimensions than asked: {', '.join(changed)}. "
            "Resume with the saved dimensions, or start a new model with --overwrite or another --out-dir"
        )
    given = data_path is not None or text is not None
    if not given and not state["data_path"] and not settings.dataset and not (out_dir / TEXT_FILE_NAME).is_file():
        raise TrainingError(f"--resume: {out_dir} was trained on a text given in memory; pass it with --data")
    if given or settings.dataset:
        path = Path(data_path) if data_path is not None else None
    else:  # the file the run recorded, or the text given in memory (the demo's), saved in the folder as train.txt
        path = Path(state["data_path"]) if state["data_path"] else out_dir / TEXT_FILE_NAME
    name = str(data_path) if data_path is not None else None if text is not None else state["data"]["path"]
    return ResumePoint(out_dir, state, settings, path, name, model_files_problem(out_dir, state))


def check_same_text(data: RunData, state: dict, out_dir: Path, data_changed: bool) -> dict:
    """A resumed run continues on the text it was trained on: the same characters always (the vocabulary), the same
    text unless `data_changed`, which trainer_state.json's "data" then records (returned: what to add to it).
    Checkpoints written before the fingerprint existed are checked by their characters only."""
    if state["chars"] != "".join(data.chars):
        raise TrainingError(
            f"--resume: {data.name} has a different set of characters ({len(data.chars)}) than the text the model "
            f"in {out_dir} was trained on ({len(state['chars'])}), so the vocabularies differ; resume with the "
            "original --data"
        )
    saved, before = state.get("data_fingerprint"), state.get("data") or {}
    if saved is None or saved == data.fingerprint:  # an earlier change stays on record
        return {key: before[key] for key in ("data_changed_at_step", "previous_data") if key in before}
    if not data_changed:
        then, now = before.get("characters"), data.info["characters"]
        how = (f"{now:,} characters where that text had {then:,}" if then not in (None, now)
               else "the same characters, but not the same text")
        raise TrainingError(
            f"--resume: {data.name} is not the text the model in {out_dir} was trained on ({how}); resume with the "
            "original --data, or pass --data-changed to continue training on this text (trainer_state.json "
            "records the change)"
        )
    return {"data_changed_at_step": state["step"], "previous_data": before}


def restore(trainer, state: dict) -> None:
    """Take the saved run back into a freshly built `trainer` (its model already holds the saved weights)."""
    trainer.optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler") is not None and trainer.accelerator.scaler is not None:
        trainer.accelerator.scaler.load_state_dict(state["scaler"])
    seed = trainer.settings.seed + trainer.rank
    if len(state["rng"]) == trainer.world:
        restore_rng(state["rng"][trainer.rank], trainer.device, trainer.sampler)
    else:  # a different number of processes: continue, but the batches cannot be the same as before
        trainer.sampler.manual_seed(seed + 1_000_003 * state["step"])
        torch.manual_seed(seed + 1_000_003 * state["step"])
        trainer.resume_note = (f"note: resuming with {trainer.world} process(es) where the run used "
                               f"{len(state['rng'])}: the weights and optimizer continue exactly, the random "
                               "batches from here on are new ones")
    run = RunState.from_dict({"log_history": list(state["log_history"]), "best_val_loss": state["best_val_loss"],
                              "best_step": state.get("best_step")})
    now = trainer.state
    now.global_step = state["step"]
    now.log_history, now.best_val_loss, now.best_step = run.log_history, run.best_val_loss, run.best_step
    now.warnings = [w for w in state.get("warnings", []) if w not in now.warnings] + now.warnings
    trainer.checkpointer.resume_from(state, trainer.model, trainer.settings.keep == "best")
    trainer.prior_elapsed = now.elapsed_s = state["elapsed_s"]
