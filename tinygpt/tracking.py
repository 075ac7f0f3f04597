"""`--report-to tensorboard|trackio`: experiment tracking as engine callbacks (transformers' `report_to`).

Each tracker logs the same things: the settings (once, at the start), the training loss and learning rate
(averaged over every `LOG_EVERY` steps, so the loss tensor is read once per 10 steps, not after every step),
the train and val loss of every evaluation, and its text sample. They are optional extras, imported only when
a run asks for them: `pip install "tinygpt[tensorboard]"` / `"tinygpt[trackio]"`. The demo never imports this.

- tensorboard: event files in `OUT_DIR/runs/` (`tensorboard --logdir OUT_DIR/runs`); `tinygpt push` uploads them,
  and the Hub shows them in the model repo's "Training metrics" tab.
- trackio: the local trackio database (`~/.cache/huggingface/trackio`, or `TRACKIO_DIR`), project "tinygpt",
  one run per output folder; `trackio show --project tinygpt` opens the dashboard.
"""

from __future__ import annotations

import json

from .card import fenced
from .trainer_callback import TrainerCallback
from .settings import TrainingError

LOG_EVERY = 10  # steps per logged training loss (their mean) and learning rate
TENSORBOARD_DIR = "runs"
TRACKIO_PROJECT = "tinygpt"


def reporting_callbacks(targets: list[str]) -> list[TrainerCallback]:
    """One callback per name of `TrainingSettings.report_targets()`; a missing package is a one-line error."""
    return [{"tensorboard": TensorBoardCallback, "trackio": TrackioCallback}[name]() for name in targets]


def _missing(name: str, package: str) -> TrainingError:
    return TrainingError(f"--report-to {name} needs the {package} package: pip install \"tinygpt[{name}]\"")


class _StepLog(TrainerCallback):
    """The shared part: training losses collected as tensors, averaged and handed to `log` every LOG_EVERY steps."""

    def __init__(self):
        self.losses = []

    def on_step_end(self, trainer, step, loss, lr):
        self.losses.append(loss.detach())
        if step % LOG_EVERY == 0:
            mean = sum(self.losses).item() / len(self.losses)  # one device sync per LOG_EVERY steps
            self.losses = []
            self.log_step(step, {"train/loss": mean, "train/learning_rate": lr})

    def log_step(self, step: int, values: dict): ...


def settings_record(trainer) -> dict:
    """The run's settings plus what the run adds (data, parameter count): what each tracker records once."""
    state = trainer.state
    record = dict(trainer.settings.to_dict(), num_processes=state.num_processes, n_params=state.n_params)
    record.update({f"data/{k}": v for k, v in state.data.items() if isinstance(v, (str, int, float))})
    return record


class TensorBoardCallback(_StepLog):
    """Writes TensorBoard event files into `OUT_DIR/runs` (created at the start of training, main process only)."""

    def __init__(self):
        super().__init__()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        self.SummaryWriter, self.writer = SummaryWriter, None

    def on_train_begin(self, trainer):
        # purge_step: events at or after the step training starts from (a run that was killed after its last
        # checkpoint, or an overwritten model's) are hidden, so the curves show this run's history only.
        self.writer = self.SummaryWriter(str(trainer.out_dir / TENSORBOARD_DIR), purge_step=trainer.state.global_step)
        settings = settings_record(trainer)
        self.writer.add_text("settings", fenced(json.dumps(settings, indent=2, ensure_ascii=False)), trainer.state.global_step)
        # The HParams tab: plain values only (None becomes "none"); no metric, as transformers' own callback does.
        self.writer.add_hparams({k: "none" if v is None else v for k, v in settings.items()}, {}, run_name=".",
                                global_step=trainer.state.global_step)

    def log_step(self, step, values):
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def on_evaluate(self, trainer, record):
        step = record["step"]
        self.writer.add_scalar("eval/train_loss", record["train_loss"], step)
        self.writer.add_scalar("eval/val_loss", record["val_loss"], step)
        if record.get("sample"):
            self.writer.add_text("sample", fenced(record["sample"]), step)
        self.writer.flush()

    def on_train_end(self, trainer, reason):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class TrackioCallback(_StepLog):
    """Logs to trackio's local database: project "tinygpt", a run named after the output folder."""

    def __init__(self):
        super().__init__()
        try:
            import trackio
        except ImportError:
            raise _missing("trackio", "trackio") from None
        self.trackio, self.started = trackio, False

    def on_train_begin(self, trainer):
        # A resumed run continues its trackio run; a new one starts afresh even if the folder's name was used.
        self.trackio.init(project=TRACKIO_PROJECT, name=trainer.out_dir.resolve().name, config=settings_record(trainer),
                          resume="allow" if trainer.resumed else "never", embed=False)
        self.started = True

    def log_step(self, step, values):
        self.trackio.log(values, step=step)

    def on_evaluate(self, trainer, record):
        values = {"eval/train_loss": record["train_loss"], "eval/val_loss": record["val_loss"]}
        if record.get("sample"):
            values["eval/sample"] = self.trackio.Table(data=[[record["step"], record["sample"]]],
                                                       columns=["step", "sample"])
        self.trackio.log(values, step=record["step"])

    def on_train_end(self, trainer, reason):
        if self.started:
            self.trackio.finish()
            self.started = False
