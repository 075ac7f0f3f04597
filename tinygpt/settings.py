"""The training settings: one typed list, from which everything else about them is derived.

Each field of `TrainingSettings` carries its default (the seed's value), its help text, its check and where its
flag goes in `train.py --help`. Presets are partial overrides. The command line (`flag_groups`, for transformers'
`HfArgumentParser`), the resolve order (defaults < a resumed run's saved settings < a preset < explicit flags),
trainer_state.json's "training_args" (`to_dict`) and the command that trains the model again (`to_command`) all
read the fields, so adding a setting is one new field here. The idea is transformers' `TrainingArguments`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import typing
from dataclasses import dataclass, field

from .card import LICENSE_ID
from .configuration_tinygpt import TinyGPTConfig
from .device import DEVICE_CHOICES
from .lr_schedule import lr_factor

DTYPES = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # --dtype -> Accelerate's mixed_precision
MODEL_DIMS = ("n_layer", "n_head", "n_embd", "block_size")
CHECKS = {  # name -> (is the value fine, what it must be)
    "at_least_1": (lambda v: v >= 1, "must be at least 1"),
    "non_negative": (lambda v: v >= 0, "must be 0 or more"),
    "positive": (lambda v: v > 0, "must be positive"),
    "fraction": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "license_id": (lambda v: LICENSE_ID.fullmatch(v) is not None, "must be a Hub licence id such as mit, apache-2.0, "
                   "cc-by-4.0, other or unknown (lower case; https://huggingface.co/docs/hub/repositories-licenses)"),
    "seed": (lambda v: 0 <= v < 2**32, "must be between 0 and 4294967295 (2**32 - 1)"),  # what every RNG takes
}


class TrainingError(ValueError):
    """A setting or situation training cannot start from; the message says what to do."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite at `step`: the run stopped, and the output folder keeps its last good
    checkpoint (`saved_step`, None if nothing was saved). train.py exits with status 4."""

    def __init__(self, step: int, value: float, learning_rate: float, out_dir, saved_step: int | None):
        self.step, self.value, self.learning_rate, self.saved_step = step, value, learning_rate, saved_step
        lower = min(learning_rate / 10, 1e-3)  # a tenth, or the seed's rate if that is lower still
        kept = (f"{out_dir} keeps the last good checkpoint (step {saved_step}); continue it with a lower rate, e.g. "
                f"--resume --learning-rate {lower:g}") if saved_step is not None else \
            f"nothing was saved; start again with a lower --learning-rate (e.g. {lower:g})"
        super().__init__(f"training diverged: the loss became {value} at step {step} (learning rate "
                         f"{learning_rate:g}, too high for this model); {kept}")


def setting(default, help, group, check=None, choices=None, metavar=None, parse=None):
    """A field that is a flag of train.py (of TrainingSettings, or a run option): its default, its help (`{default}`
    in it shows the default), its help group, its check (a name in CHECKS), its choices, its metavar, and `parse`,
    a function from the flag's text to its value where the field's type is not enough (argparse's `type`)."""
    return field(default=default, metadata={"help": help, "group": group, "check": check, "choices": choices,
                                            "metavar": metavar, "parse": parse})


DATA, MODEL, OPTIM, EVAL, RUNTIME = ("data and output", "model (the seed's names)", "optimisation",
                                     "evaluation and checkpoints", "runtime")
# Where a run reports besides train.py's output (transformers' `report_to` names); each needs its pip extra.
REPORT_TO = ("tensorboard", "trackio")
# Settings that change where a run reports or how often it saves, not the model it trains: left out of the
# reproduce command.
NOT_REPRODUCED = ("report_to", "license", "save_interval")

PRESETS = {
    # The blog series' final post: exactly the defaults, listed so `--preset seed` reads as the recipe.
    "seed": {
        "n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 32, "dropout": 0.0,
        "batch_size": 16, "learning_rate": 1e-3, "max_iters": 3000, "eval_interval": 300, "eval_iters": 200,
        "lr_schedule": "constant", "warmup_iters": 0, "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999,
        "grad_clip": 0.0,
    },
    # Validation loss per second on a 2-core laptop CPU: the seed's own model, trained harder. With well under
    # a minute of compute, steps are what is short, not capacity: wider, deeper or longer-context models
    # (nanoGPT's CPU recipe is 4 x 128 x 64) reach val 1.88 later. Twice the seed's batch at ten times its
    # rate, warmed up, cosine-decayed and clipped, passes 1.88 around step 1450 and ends near 1.77; evaluation
    # is cheap (a few large batches) and every 300 steps. One thread: at this size a second one gains nothing
    # even on an idle machine, and on a busy one OpenMP's barriers make every step up to 70x slower.
    "cpu": {
        "n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 32, "dropout": 0.0,
        "batch_size": 32, "learning_rate": 1e-2, "max_iters": 2400, "eval_interval": 300, "eval_iters": 10,
        "eval_batch_size": 128, "lr_schedule": "cosine", "warmup_iters": 50, "lr_decay_iters": 2400,
        "min_lr": 1e-3, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0, "threads": 1,
    },
}
PRESET_HELP = ("seed: the blog series' hyper-parameters (the defaults). cpu: best val loss per second on a laptop CPU: "
               + ", ".join(f"{k} {v}" for k, v in PRESETS["cpu"].items()))


@dataclass(frozen=True)
class TrainingSettings:
    """Everything a training run depends on. Defaults are the seed's hyper-parameters (the blog's final post)."""

    # The preset these settings started from (recorded, and the reproduce command's base).
    preset: str | None = setting(None, PRESET_HELP, DATA, choices=tuple(sorted(PRESETS)))
    init_from: str | None = setting(
        None, "fine-tune: start from this tinygpt model (a folder or a Hub repo id) with its weights and "
        "dimensions instead of random weights; characters of the new text it does not know are added to its "
        "vocabulary (default: from scratch)", DATA, metavar="MODEL")
    dataset: str | None = setting(
        None, "train on a `datasets` dataset instead of --data: a Hub dataset id, or local .txt/.json/.jsonl/.csv/"
        ".parquet file(s) or a folder of them; each row's text is followed by a newline. Needs `pip install "
        "\"tinygpt[datasets]\"`", DATA, metavar="NAME")
    dataset_config: str | None = setting(None, "the dataset's configuration (subset) name, if it has several",
                                         DATA, metavar="NAME")
    # None = the usual name; so a run without --dataset records no dataset options (the card lists what is set).
    dataset_split: str | None = setting(None, "the dataset's split (default: train)", DATA, metavar="NAME")
    text_column: str | None = setting(None, "the dataset's column that holds the text (default: text)", DATA,
                                      metavar="NAME")
    license: str | None = setting(
        None, "the licence the model card declares, your choice for what the text allows: a Hub licence id such as "
        "mit, apache-2.0, cc-by-4.0 or other (default: unknown)", DATA, "license_id", metavar="ID")
    n_layer: int = setting(2, "transformer blocks (default: {default})", MODEL)
    n_head: int = setting(4, "attention heads per block (default: {default})", MODEL)
    n_embd: int = setting(64, "width of every character vector (default: {default})", MODEL)
    block_size: int = setting(32, "context length in characters (default: {default})", MODEL)
    dropout: float = setting(0.0, "dropout probability (default: {default})", MODEL)
    batch_size: int = setting(16, "sequences per step per process; effective batch = batch_size x processes "
                              "(default: {default})", OPTIM, "at_least_1")
    max_iters: int = setting(3000, "optimizer steps in total (default: {default})", OPTIM, "non_negative")
    max_seconds: float | None = setting(
        None, "time budget: once the run has trained this long (a resumed run's earlier time counts), evaluate, "
        "save and stop (default: no limit)", OPTIM, "positive")
    learning_rate: float = setting(1e-3, "AdamW learning rate, the peak of a schedule (default: {default})", OPTIM,
                                   "positive")
    lr_schedule: str = setting("constant", "constant (the seed), or cosine decay from --learning-rate to --min-lr "
                               "at --lr-decay-iters (default: {default})", OPTIM, choices=("constant", "cosine"))
    warmup_iters: int = setting(0, "linear warm-up steps, for either schedule (default: {default})", OPTIM,
                                "non_negative")
    lr_decay_iters: int | None = setting(
        None, "step where the cosine schedule reaches --min-lr (its own horizon, not --max-iters, so a run "
        "extended with --resume --max-iters keeps its schedule); required by --lr-schedule cosine", OPTIM,
        "at_least_1")
    min_lr: float | None = setting(None, "final rate of the cosine schedule (default: learning_rate / 10)", OPTIM,
                                   "non_negative")
    weight_decay: float = setting(0.01, "AdamW weight decay, on every parameter as in the seed (default: "
                                  "{default})", OPTIM, "non_negative")  # torch AdamW's default, which the seed uses
    beta1: float = setting(0.9, "AdamW beta1 (default: {default})", OPTIM, "fraction")
    beta2: float = setting(0.999, "AdamW beta2 (default: {default})", OPTIM, "fraction")
    grad_clip: float = setting(0.0, "clip the gradient norm to this value; 0 = off (default: {default})", OPTIM,
                               "non_negative")
    eval_interval: int = setting(300, "estimate the train and val loss, with a text sample, then save a checkpoint, "
                                 "every this many steps (the posts do not publish it; default: {default})", EVAL,
                                 "at_least_1")
    # The Train tab's: loss points between samples and checkpoints (both cost more than the losses; a learner wants
    # the curve's points often, the text now and then, and the folder complete only when the run ends).
    sample_interval: int | None = setting(
        None, "generate the text sample only every this many steps, a multiple of --eval-interval; the evaluations "
        "between record losses only. The last step is always sampled, and so are the weights a checkpoint keeps "
        "(default: at every evaluation)", EVAL, "at_least_1")
    save_interval: int | None = setting(
        None, "save a checkpoint only every this many steps, a multiple of --eval-interval; 0 = only when the run "
        "ends (stopped or not; a killed run then leaves nothing) (default: at every evaluation)", EVAL,
        "non_negative")
    eval_iters: int = setting(200, "batches averaged per loss estimate (the posts do not publish it; default: "
                              "{default})", EVAL, "at_least_1")
    eval_batch_size: int | None = setting(None, "sequences per evaluation batch (default: --batch-size)", EVAL,
                                          "at_least_1")
    keep: str = setting("last", "which weights the folder's model holds (what generate, the demo and a push use): "
                        "last = the latest step; best = the evaluation with the lowest val loss (trainer_state.json's "
                        "best_step). --resume always continues from the latest step (default: {default})", EVAL,
                        choices=("last", "best"))
    seed: int = setting(1337, "seed for the initial weights and the batches (default: {default})", RUNTIME, "seed")
    device: str = setting("auto", "auto = cuda, else mps, else cpu (default: {default})", RUNTIME,
                          choices=DEVICE_CHOICES)
    dtype: str = setting("fp32", "fp32, or bf16/fp16 autocast (mixed precision; fp16 needs a GPU) (default: "
                         "{default})", RUNTIME, choices=tuple(DTYPES))
    compile: bool = setting(False, "torch.compile the model (slow start, faster steps on GPU)", RUNTIME)
    # One thread: at these sizes a second gains nothing even on an idle machine, and on a busy one OpenMP's
    # barriers make every step 10x slower (benchmarks/threads.py: the seed preset, 85 ms against 955 ms a step).
    threads: int = setting(1, "CPU threads per process; 0 = torch's default (one per core). One is fastest for "
                           "models of tinygpt's sizes, many times so on a busy machine; more can help a much bigger "
                           "model on an idle one (default: {default})", RUNTIME, "non_negative")
    report_to: str | None = setting(
        None, "also log losses, learning rate, samples and settings to: tensorboard, trackio, several "
        "(comma-separated), all, or none (default: none); each needs its extra, e.g. "
        "`pip install \"tinygpt[tensorboard]\"`", RUNTIME, metavar="WHERE")

    PRESETS = PRESETS  # as TrainingSettings.PRESETS too

    def __post_init__(self):
        self.check()

    @classmethod
    def from_preset(cls, preset: str | None = None, **overrides) -> TrainingSettings:
        """The defaults, then `preset`'s values ("seed", "cpu" or None), then `overrides`; checked."""
        return cls.resolve(dict(overrides, preset=preset))

    @classmethod
    def resolve(cls, given: dict, saved: dict | None = None) -> TrainingSettings:
        """defaults < `saved` (a resumed run's, with its preset) < a preset in `given` < the rest of `given`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - names)
        if unknown:
            raise TrainingError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        values = {k: v for k, v in (saved or {}).items() if k in names}
        if given.get("preset") is not None:
            if given["preset"] not in cls.PRESETS:
                raise TrainingError(f"unknown preset {given['preset']!r}; choose one of {', '.join(cls.PRESETS)}")
            values.update(cls.PRESETS[given["preset"]])
        values.update({k: v for k, v in given.items() if k != "preset" or v is not None})
        return cls(**values)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingSettings:
        """Back from `to_dict` (trainer_state.json's "training_args"; keys that are not settings are ignored)."""
        return cls.resolve({}, saved=data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def list_presets(cls) -> list[str]:
        return sorted(cls.PRESETS)

    def check(self) -> None:
        """Refuse values a run cannot start from, naming the flag; model dims are TinyGPTConfig's to judge."""
        for f in dataclasses.fields(self):
            value, flag = getattr(self, f.name), flag_name(f.name)
            if value is None and "None" in f.type:
                continue
            kind = value_type(f)
            if kind is not type(value) and not (kind is float and type(value) is int):
                raise TrainingError(f"{flag} must be {kind.__name__}, got {value!r}")
            if kind is float and not math.isfinite(value):  # "inf" and "nan" parse as floats
                raise TrainingError(f"{flag} must be a finite number, got {value}")
            choices = f.metadata.get("choices") or (tuple(self.PRESETS) if f.name == "preset" else None)
            if choices and value not in choices:
                raise TrainingError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")
            if f.metadata.get("check"):
                fine, rule = CHECKS[f.metadata["check"]]
                if not fine(value):
                    raise TrainingError(f"{flag} {rule}, got {value}")
        self.report_targets()  # refuses unknown names
        for name in ("dataset_config", "dataset_split", "text_column"):
            if getattr(self, name) is not None and self.dataset is None:
                raise TrainingError(f"{flag_name(name)} needs --dataset NAME")
        for name in ("sample_interval", "save_interval"):  # both happen at evaluations, the end aside
            value = getattr(self, name)
            if value and value % self.eval_interval:
                raise TrainingError(f"{flag_name(name)} ({value}) must be a multiple of --eval-interval "
                                    f"({self.eval_interval}): it happens at evaluations")
        if self.lr_schedule == "cosine" and self.lr_decay_iters is None:
            raise TrainingError("--lr-schedule cosine needs --lr-decay-iters: the step where the rate reaches "
                                "--min-lr (e.g. the planned --max-iters)")
        if self.lr_schedule == "cosine" and self.lr_decay_iters <= self.warmup_iters:
            raise TrainingError(f"--lr-decay-iters ({self.lr_decay_iters}) must be larger than --warmup-iters "
                                f"({self.warmup_iters})")
        try:  # impossible dims fail here, before any text is read, with TinyGPTConfig's own message
            self.model_config(vocab_size=1)
        except ValueError as err:
            raise TrainingError(str(err)) from None

    def report_targets(self) -> list[str]:
        """`report_to` as a list, HF-style: "none" -> [], "all" -> every one, else comma/space separated names."""
        names = (self.report_to or "none").replace(",", " ").split()
        if names in ([], ["none"]):
            return []
        if names == ["all"]:
            return list(REPORT_TO)
        unknown = [n for n in names if n not in REPORT_TO]
        if unknown:
            raise TrainingError(f"--report-to: unknown {', '.join(map(repr, unknown))}; choose from "
                                f"{', '.join(REPORT_TO)}, several (comma-separated), all or none")
        return list(dict.fromkeys(names))

    def model_config(self, vocab_size: int) -> TinyGPTConfig:
        return TinyGPTConfig(vocab_size=vocab_size, dropout=self.dropout, **{k: getattr(self, k) for k in MODEL_DIMS})

    def with_model_dims(self, config) -> TrainingSettings:
        """These settings with a model's dimensions (a fine-tune keeps those of the model it starts from)."""
        return dataclasses.replace(self, **{k: getattr(config, k) for k in MODEL_DIMS})

    def learning_rate_at(self, step: int) -> float:
        """The rate of the optimizer step taken at `step` (0-based): warm-up, then constant or cosine to min_lr
        (`tinygpt.lr_schedule`, the same numbers the run's scheduler sets)."""
        return self.learning_rate * lr_factor(self, step)

    def to_command(self, data: str, out_dir: str, num_processes: int = 1) -> str:
        """A command that trains this model again: the preset plus every setting that differs from it (with
        --dataset, that names the data and `data` is left out)."""
        base = TrainingSettings.from_preset(self.preset)
        launcher = "python" if num_processes == 1 else f"torchrun --nproc-per-node {num_processes}"
        parts = [launcher, "train.py"] + ([] if self.dataset else ["--data", shlex.quote(data)])
        parts += ["--out-dir", shlex.quote(out_dir)]
        if self.preset:
            parts += ["--preset", self.preset]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name not in ("preset", *NOT_REPRODUCED) and value is not None and value != getattr(base, f.name):
                parts += [flag_name(f.name)] if value is True else [flag_name(f.name), shlex.quote(str(value))]
        return " ".join(parts)


def flag_groups(*classes) -> list[type]:
    """The flags of these dataclasses' `setting()` fields as transformers' HfArgumentParser takes them: one dataclass
    per help group (its `_argument_group_name`), groups in the order they first appear, each field with its help,
    metavar and choices. Every default is argparse.SUPPRESS, so a flag not given stays out of the parsed namespace:
    explicit flags then override the preset and a resumed run's settings, and the defaults live in the fields."""
    groups: dict[str, list] = {}
    for cls in classes:
        types = typing.get_type_hints(cls)  # the real types, where the fields hold strings (postponed annotations)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            kwargs = {"help": meta["help"].format(default=f.default)}
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            elif types[f.name] is not bool:
                kwargs["metavar"] = meta["metavar"] or ("N" if value_type(f) is int else "X")
            # HfArgumentParser takes a flag's argparse `type` from the field's annotation: `parse` goes there.
            flag = (f.name, meta["parse"] or types[f.name], field(default=argparse.SUPPRESS, metadata=kwargs))
            groups.setdefault(meta["group"], []).append(flag)
    return [dataclasses.make_dataclass(f"Flags{i}", flags, namespace={"_argument_group_name": title})
            for i, (title, flags) in enumerate(groups.items())]


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def value_type(f: dataclasses.Field) -> type:
    """int, float, str or bool, from the field's annotation (a string here: `from __future__ import annotations`)."""
    return {"int": int, "float": float, "str": str, "bool": bool}[f.type.split(" |")[0]]

