"""What a run saves at each checkpoint, and the weights it keeps for it (torchtune's checkpointer).

A checkpoint is the output folder as a whole: a `save_pretrained` model (the best-val weights with keep=best, else
the latest), its tokenizer, trainer_state.json (the run state), the files callbacks add (`on_checkpoint`: the card
and the loss plot), train.txt for a text given in memory, and training_state.pt, the resume state: everything
`resume.restore` needs to continue the latest step exactly. How the files get into the folder atomically, so that
a kill or a full disk at any instant leaves the old checkpoint or the new one, is `tinygpt.checkpoint`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .checkpoint import (
    TRAINING_STATE_NAME, CheckpointError, capture_rng, carried_over, describe_save_error, holds_model, replace_folder,
    save_training_state, write_checkpoint,
)
from .run_data import TEXT_FILE_NAME


class Checkpointer:
    """Checkpoints of one run into `out_dir`; `replace_old_model` (--overwrite): the first one takes the place of the
    model already there in one move. With keep=best it holds a copy of the best evaluation's weights."""

    def __init__(self, out_dir: Path, replace_old_model: bool = False):
        self.out_dir = out_dir
        self.replace_old_model = replace_old_model
        self.saved_step: int | None = None  # the step the folder's checkpoint holds
        # keep=best: the weights of the best evaluation so far and its step; model.safetensors gets them
        # (training_state.pt always holds the latest weights, so --resume continues the last step exactly).
        self.best_weights: dict | None = None
        self.best_step: int | None = None

    def keep_best(self, model: torch.nn.Module, step: int) -> None:
        """Keep a copy of `model`'s weights as the ones the folder's model is to hold (the best so far)."""
        self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.best_step = step

    def model_step(self, step: int) -> int:
        """The step whose weights a checkpoint of `step` puts in model.safetensors."""
        return self.best_step if self.best_weights is not None else step

    def resume_from(self, state: dict, model: torch.nn.Module, keep_best: bool) -> None:
        """A resumed run: the folder holds the resume state's step, and with keep=best the weights it kept."""
        self.saved_step = state["step"]
        if keep_best:
            if state.get("best_model") is not None:
                self.best_weights, self.best_step = state["best_model"], state["best_model_step"]
            else:  # the best was the saved step itself, or the run kept its last weights until now
                self.keep_best(model, state["step"])

    def save(self, trainer, step: int, on_checkpoint: Callable[[Path], None]) -> None:
        """Write `trainer`'s checkpoint of `step`; every process takes part (their random states), the main one
        writes, calling `on_checkpoint(staging)` before the resume state. A failed write raises CheckpointError
        (on every process) saying what the folder still holds."""
        rng = [capture_rng(trainer.device, trainer.sampler)]
        from accelerate.utils import broadcast_object_list, gather_object

        rng = gather_object(rng) if trainer.world > 1 else rng
        error = None
        if trainer.is_main:
            def write_files(staging: Path) -> None:
                self._write_files(trainer, staging, step, rng, on_checkpoint)

            try:
                if self.replace_old_model and holds_model(self.out_dir):  # else no model to swap: file by file
                    replace_folder(self.out_dir, write_files, carry=carried_over)
                else:
                    write_checkpoint(self.out_dir, write_files, first=self.saved_step is None)
            except CheckpointError as err:
                error = describe_save_error(self.out_dir, step, self.saved_step, err)
        error = broadcast_object_list([error])[0] if trainer.world > 1 else error
        if error:
            raise CheckpointError(error)
        self.replace_old_model = False
        self.saved_step = step

    def _write_files(self, trainer, staging: Path, step: int, rng: list[dict], on_checkpoint) -> None:
        model, state = trainer.model, trainer.state
        # The folder's model: the best-val weights (keep=best) or the latest; the resume state: always the latest.
        model.save_pretrained(staging, state_dict=self.best_weights)
        trainer.tokenizer.save_pretrained(staging)
        state.global_step, state.elapsed_s, state.model_step = step, round(trainer.elapsed(), 3), self.model_step(step)
        state.save(staging)
        if trainer.data.text is not None and self.saved_step is None:  # the text given in memory, for the command
            (staging / TEXT_FILE_NAME).write_text(trainer.data.text, encoding="utf-8")
        on_checkpoint(staging)
        save_training_state(staging / TRAINING_STATE_NAME, self._resume_state(trainer, step, rng))

    def _resume_state(self, trainer, step: int, rng: list[dict]) -> dict:
        """training_state.pt: plain containers and tensors, which `torch.load(weights_only=True)` reads with no
        code run. `resume.open_run` and `resume.restore` read it back."""
        state, data = trainer.state, trainer.data
        keep_best = self.best_weights is not None and self.best_step != step
        return {
            "step": step, "settings": trainer.settings.to_dict(),
            "data_path": str(data.path) if data.path else None, "data": state.data,
            "data_fingerprint": data.fingerprint, "chars": "".join(data.chars),
            "model_config": trainer.model.config.to_json_string() if trainer.settings.init_from else None,
            "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scaler": trainer.accelerator.scaler.state_dict() if trainer.accelerator.scaler is not None else None,
            "rng": rng, "log_history": state.log_history, "best_val_loss": state.best_val_loss,
            "best_step": state.best_step, "warnings": state.warnings,
            "best_model": self.best_weights if keep_best else None,
            "best_model_step": self.best_step if keep_best else None,
            "elapsed_s": trainer.elapsed(), "num_processes": trainer.world,
        }
