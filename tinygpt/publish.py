"""Subscribers that publish a run: the model card and loss plot in every checkpoint, and the Hub push."""

from __future__ import annotations

import shlex
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


def check_push_repo_id(repo_id: str) -> None:
    """A ValueError naming --push-to-hub for an id the Hub would refuse (its own rule: validate_repo_id), so a
    run that could never be pushed is refused before it trains, not after."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ValueError(f"--push-to-hub {repo_id!r} is not a valid Hub repo id: use USER/NAME (or NAME for your "
                         "own namespace) with letters, digits, '-', '_' and '.', at most 96 characters each, no '--' "
                         "or '..'; nothing was trained") from None


class HubPusher(TrainerCallback):
    """Pushes the folder with `tinygpt push`'s code when the run ends (not when stopped), or after every
    evaluation's checkpoint. The repo id is checked when this is made, before any training (the Hub's own rule,
    huggingface_hub's validate_repo_id). A failed push never costs the run: `failed` holds its one-line reason
    (None after a push that worked), for train.py's last line; one that training outlives (--push-every-eval) is
    said once, as a warning, when the next checkpoint is saved."""

    def __init__(self, repo_id: str, every_eval: bool = False):
        check_push_repo_id(repo_id)
        self.repo_id, self.every_eval, self.failed = repo_id, every_eval, None
        self._unsaid = None  # a failure not said yet: said when training goes on past it

    def on_save(self, trainer, step, out_dir):
        last = trainer.state.last_eval
        if self.every_eval and last is not None and last["step"] == step:
            self.say_earlier_failure()
            self.push(trainer, step)

    def on_train_end(self, trainer, reason):
        if not self.every_eval and reason != "stopped":
            self.push(trainer, trainer.state.global_step)

    def say_earlier_failure(self):
        if self._unsaid:
            print(f"train.py: warning: {self._unsaid}; training goes on, the next checkpoint is pushed again",
                  file=sys.stderr, flush=True)
            self._unsaid = None

    def push(self, trainer, step):
        from .model_repo import push_folder

        kept = trainer.state.model_eval or {}  # the losses of the weights being pushed
        message = f"step {step}" + (f": val loss {kept['val_loss']:.4f}" if "val_loss" in kept else "")
        try:
            url = push_folder(trainer.out_dir, self.repo_id, commit_message=message)
        except Exception as err:  # noqa: BLE001 - a failed upload must never cost the run
            self.failed = self._unsaid = f"push to {self.repo_id} failed: {one_line(err)}"
        else:
            self.failed = None
            print(f"pushed step {step} to {url}", flush=True)

    def failure_line(self, out_dir) -> str:
        """train.py's one line for a run whose last push failed: why, and the command that retries it."""
        return (f"train.py: {self.failed}; the model is trained and saved in {out_dir}: upload it with: tinygpt push "
                f"{shlex.quote(str(out_dir))} {shlex.quote(self.repo_id)}")
