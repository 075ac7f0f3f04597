"""The state of a training run: what the engine updates, what callbacks read and what trainer_state.json holds.

Modelled on transformers' `TrainerState`: the engine keeps one `RunState` as `trainer.state` and updates it as the
run goes (steps, evaluations, the best val loss, the status); a callback (`on_xxx(self, trainer, ...)`) reads
`trainer.state` instead of rebuilding its own view of the run. `trainer_state.json` in every checkpoint is its
serialisation (`save`), and `RunState.load(folder)` is the one reader of that file (the model card, the Hub push,
the demo, train.py's resume messages), so old and new files are read by the same rules.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

TRAINER_STATE_NAME = "trainer_state.json"
STATUSES = ("training", "finished", "stopped", "time_limit", "diverged")


@dataclass
class RunState:
    """One training run, as of its last update. Losses are mean cross-entropy per character (natural log)."""

    global_step: int = 0  # optimizer steps done
    max_steps: int = 0  # the step the run trains to (--max-iters)
    log_history: list[dict] = field(default_factory=list)  # one record per evaluation, oldest first:
    # {"step", "train_loss", "val_loss", "lr", "elapsed_s", "sample"}; no "sample" where only the losses were
    # recorded (`sample_interval`), until a checkpoint keeps those weights (their sample is then added)
    best_val_loss: float | None = None  # the lowest val_loss in log_history
    best_step: int | None = None  # the step of that evaluation
    model_step: int | None = None  # the step whose weights the folder's model.safetensors holds
    elapsed_s: float = 0.0  # seconds of training so far, a resumed run's earlier ones included
    n_params: int | None = None
    status: str = "training"  # "training" | "finished" | "stopped" | "time_limit" | "diverged"
    num_processes: int = 1
    train_batch_size: int | None = None  # sequences per step per process
    training_args: dict = field(default_factory=dict)  # TrainingSettings.to_dict() + num_processes
    data: dict = field(default_factory=dict)  # {"name", "path", "characters", "vocab_size", "val_repeats_train"}
    command: str | None = None  # the train.py command that trains this model again, run from the project root
    run_name: str | None = None  # how the run is named (card title, load snippet): never a server's path
    warnings: list[str] = field(default_factory=list)  # plain sentences a learner should read (memorising, ...)
    extra: dict = field(default_factory=dict)  # keys of a newer or hand-edited file, kept as they were

    # ------------------------------------------------------------------------------------------ reading the run

    @property
    def last_eval(self) -> dict | None:
        return self.log_history[-1] if self.log_history else None

    @property
    def best_eval(self) -> dict | None:
        """The evaluation with the lowest val loss (the kept model when `--keep best`)."""
        return next((r for r in self.log_history if r.get("step") == self.best_step), None)

    @property
    def model_eval(self) -> dict | None:
        """The evaluation of the weights in the folder (their losses and sample), if they were evaluated."""
        step = self.global_step if self.model_step is None else self.model_step
        return next((r for r in reversed(self.log_history) if r.get("step") == step), None)

    def record_evaluation(self, record: dict) -> bool:
        """Append an evaluation; returns whether its val loss is the best so far."""
        self.log_history.append(record)
        best = self.best_val_loss is None or record["val_loss"] < self.best_val_loss
        if best:
            self.best_val_loss, self.best_step = record["val_loss"], record["step"]
        return best

    def warn(self, message: str, kind: str | None = None) -> bool:
        """Add a plain-words warning once; `kind` (a prefix of the message) replaces an older one of that kind.
        Returns whether the list changed."""
        if message in self.warnings:
            return False
        if kind is not None:
            self.warnings = [w for w in self.warnings if not w.startswith(kind)]
        self.warnings.append(message)
        return True

    # ------------------------------------------------------------------------------------------ trainer_state.json

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def save(self, folder: str | Path) -> Path:
        """Write `folder/trainer_state.json` (the engine writes it into a staging folder, then moves it in)."""
        path = Path(folder) / TRAINER_STATE_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict) -> RunState:
        """From a trainer_state.json object, of any tinygpt version: missing keys get their defaults (a file from
        before best_step/status existed gets them from its log), unknown keys are kept in `extra`."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        state = cls(**{k: v for k, v in data.items() if k in names},
                    extra={k: v for k, v in data.items() if k not in names})
        state.log_history = [r for r in state.log_history or [] if isinstance(r, dict)]
        state.warnings = [w for w in state.warnings or [] if isinstance(w, str)]
        state.training_args, state.data = state.training_args or {}, state.data or {}
        evaluated = [r for r in state.log_history if _is_number(r.get("val_loss"))]
        if state.best_step is None and evaluated:  # an older file: the best is in its log
            best = min(evaluated, key=lambda r: r["val_loss"])
            state.best_step = best.get("step")
            if state.best_val_loss is None:
                state.best_val_loss = best["val_loss"]
        if "elapsed_s" not in data and state.log_history:
            state.elapsed_s = state.log_history[-1].get("elapsed_s", 0.0)
        if "status" not in data and state.max_steps and state.global_step >= state.max_steps:
            state.status = "finished"
        return state

    @classmethod
    def load(cls, folder: str | Path) -> RunState | None:
        """The folder's trainer_state.json, or None where there is none (a converted or hand-saved model).

        A file that is not a JSON object is a ValueError saying so (it only describes the run: fix or delete it).
        """
        path = Path(folder) / TRAINER_STATE_NAME
        if not path.is_file():
            return None
        return cls.from_json(path.read_bytes(), str(path))

    @classmethod
    def from_json(cls, text: str | bytes, where: str = TRAINER_STATE_NAME) -> RunState:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{where}: not valid JSON ({err}); fix or delete it (it only describes the run)") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object like train.py writes, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except (TypeError, AttributeError) as err:
            raise ValueError(f"{where}: not a tinygpt trainer state ({err})") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def bits_per_character(loss: float) -> float:
    """A loss in nats per character as bits per character (loss / ln 2): 1 bit = one fair yes/no guess."""
    return loss / math.log(2)
