"""Subscribers that publish a run: the model card and loss plot in every checkpoint, and the Hub push."""

from __future__ import annotations

import sys

from .card import CARD_NAME, LOSS_PLOT_NAME, build_model_card
from .common import one_line
from .trainer_callback import TrainerCallback
from .plots import plot_losses


class ModelCardWriter(TrainerCallback):
    """Writes loss.png and README.md into every checkpoint, so the card always describes the weights beside it.

    The card is built from the trainer_state.json of the same checkpoint; `repo_id` is what its load snippet
    names (default: the run's name, `trainer.state.run_name`). Subscribe it like any other callback
    (`Trainer(..., callbacks=[ModelCardWriter(), ...])`): the engine does not write cards by itself.
    """

    def __init__(self, repo_id: str | None = None):
        self.repo_id = repo_id

    def on_checkpoint(self, trainer, step, folder):
        state = trainer.state
        if state.log_history:
            plot_losses(state.log_history, folder / LOSS_PLOT_NAME, title=state.data.get("name"))
        build_model_card(folder, repo_id=self.repo_id or state.run_name).save(folder / CARD_NAME)


class HubPusher(TrainerCallback):
    """Pushes the folder with `tinygpt push`'s code when the run ends (not when stopped), or after every
    evaluation's checkpoint. A failed push is reported and training goes on; `failed`: did the last one fail?"""

    def __init__(self, repo_id: str, every_eval: bool = False):
        self.repo_id, self.every_eval, self.failed = repo_id, every_eval, False

    def on_save(self, trainer, step, out_dir):
        last = trainer.state.last_eval
        if self.every_eval and last is not None and last["step"] == step:
            self.push(trainer, step)

    def on_train_end(self, trainer, reason):
        if not self.every_eval and reason != "stopped":
            self.push(trainer, trainer.state.global_step)

    def push(self, trainer, step):
        from .hub import push_folder

        kept = trainer.state.model_eval or {}  # the losses of the weights being pushed
        message = f"step {step}" + (f": val loss {kept['val_loss']:.4f}" if "val_loss" in kept else "")
        try:
            url = push_folder(trainer.out_dir, self.repo_id, commit_message=message)
        except Exception as err:  # noqa: BLE001 - a failed upload must never cost the run
            self.failed = True
            print(f"train.py: push to {self.repo_id} failed: {one_line(err)}", file=sys.stderr, flush=True)
        else:
            self.failed = False
            print(f"pushed step {step} to {url}", flush=True)
