"""`python train.py`: the training engine (`tinygpt.engine`) as a command a learner can point at their own text.

The settings come from `TrainingSettings` (its fields are the flags); the run is a `Trainer` with three
subscribers: the console (log lines and a progress bar), the model card writer and, with --push-to-hub, the
Hub push. SIGINT/SIGTERM call `trainer.stop()`: the current step is saved and the command exits 0.
Exit status: 0 done or stopped, 2 bad input or a failed save, 3 trained and saved but the Hub push failed,
4 the loss became NaN or infinite (the folder keeps its last good checkpoint), 130 a second Ctrl-C. Each failure
is one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

from transformers import HfArgumentParser

from .checkpoint import TRAINING_STATE_NAME, clean_leftovers
from .common import OneLineArgumentParser, one_line, quiet_libraries
from .engine import Trainer
from .output_folder import folder_name
from .publish import HubPusher, ModelCardWriter
from .settings import DATA, MODEL_DIMS, TrainingDiverged, TrainingError, TrainingSettings, flag_groups, setting
from .trainer_callback import TrainerCallback

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("data") / "tinyshakespeare.txt"
DEFAULT_OUT_DIR = "out"
BAD_INPUT, PUSH_FAILED, DIVERGED = 2, 3, 4
HUB = "Hugging Face Hub"


@dataclass
class RunOptions:
    """train.py's own flags beside the settings: the text, the folder, and what to do with a model already there."""

    data: str | None = setting(None, f"UTF-8 text file to train on (default: {DEFAULT_DATA}); one of 1 GiB or more "
                               "is prepared once into a memory-mapped id file in the output folder", DATA,
                               metavar="FILE")
    out_dir: str = setting(DEFAULT_OUT_DIR, "output folder (default: {default}); files of yours in it are never "
                           "replaced without --overwrite", DATA, metavar="DIR", parse=folder_name)
    resume: bool = setting(False, "continue the run saved in --out-dir, with its settings", DATA)
    overwrite: bool = setting(False, "replace a model already in --out-dir (the old one stays until the new run's "
                              "first checkpoint takes its place in one move)", DATA)
    data_changed: bool = setting(False, "with --resume: continue on a --data text other than the run's (same "
                                 "characters); trainer_state.json records the step where it changed", DATA)


@dataclass
class PushOptions:
    """--push-to-hub: where the folder goes when training ends."""

    push_to_hub: str | None = setting(None, "push the folder to this Hub repo when training ends", HUB,
                                      metavar="REPO_ID")
    push_every_eval: bool = setting(False, "with --push-to-hub: also push after every checkpoint", HUB)


RUN_OPTIONS = tuple(f.name for options in (RunOptions, PushOptions) for f in fields(options))


class FlagParser(OneLineArgumentParser, HfArgumentParser):
    """transformers' HfArgumentParser (flags generated from dataclass fields, in help groups), with one-line usage
    errors. It offers every flag in two spellings (--out_dir, --out-dir); train.py's flags stay the hyphenated ones,
    which its help, its errors and the reproduce command name."""

    def add_argument_group(self, *args, **kwargs):
        group = super().add_argument_group(*args, **kwargs)
        add_argument = group.add_argument
        group.add_argument = lambda *names, **options: add_argument(*(n for n in names if "_" not in n), **options)
        return group


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """train.py's flags: the run options, TrainingSettings' fields and the push options, each flag "not given"
    (absent from the parsed namespace) unless given, so explicit flags override the preset and a resumed run's
    settings (`settings.flag_groups`)."""
    return FlagParser(
        flag_groups(RunOptions, TrainingSettings, PushOptions), prog=prog, formatter_class=argparse.HelpFormatter,
        description="Train a character-level GPT on any UTF-8 text. With no arguments: the blog series' settings "
        "on tiny Shakespeare. The output folder is a Hugging Face model folder (from_pretrained loads it) and is "
        "checkpointed atomically after every evaluation (or every --save-interval steps).",
        epilog="Several processes: `torchrun --nproc-per-node N train.py ...` or `accelerate launch "
        "--num_processes N train.py ...`. Each process samples its own --batch-size sequences, so one step sees "
        "batch_size x N sequences; --max-iters, --eval-interval and the schedule count optimizer steps, whatever N "
        "is. Explicit flags override the preset, and on --resume the settings saved in the folder. Exit status: 0 "
        "done or stopped by a signal, 2 bad input or a failed save, 3 trained and saved but the --push-to-hub "
        "upload failed (the `tinygpt push` command that retries it is printed), 4 the loss became NaN or infinite "
        "(the folder keeps its last good checkpoint; resume it with a lower --learning-rate), 130 a second Ctrl-C.",
    )


class Console(TrainerCallback):
    """train.py's output: the run's first line, a progress bar on a terminal, a line per evaluation, the end."""

    def __init__(self, signals: StopOnSignal):
        self.signals, self.bar, self.last_postfix, self.warned = signals, None, 0.0, set()

    def on_train_begin(self, trainer):
        s, state = trainer.settings, trainer.state
        info = state.data
        if trainer.resume_note:
            print(trainer.resume_note, flush=True)
        if s.init_from:
            print(f"fine-tuning {s.init_from}" + (f" ({info['vocab_size'] - info['base_vocab_size']} new "
                  "character(s) added to its vocabulary)" if info["vocab_size"] > info["base_vocab_size"] else ""),
                  flush=True)
        print(f"training {state.n_params:,} parameters on {info['path'] or info['name']} "
              f"({info['characters']:,} characters, "
              f"{info['vocab_size']} distinct): {trainer.world} process(es) x batch {s.batch_size} x {s.block_size} "
              f"characters per step, steps {state.global_step} -> {s.max_iters}, device {trainer.device.type}",
              flush=True)
        self.print_warnings(trainer)
        if sys.stdout.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=s.max_iters, initial=state.global_step, unit="it", dynamic_ncols=True, leave=True)

    def print_warnings(self, trainer):
        """The run state's plain-words warnings (memorising, ...), each once."""
        for warning in trainer.state.warnings:
            if warning not in self.warned:
                self.warned.add(warning)
                self.write(f"warning: {warning}")

    def write(self, line):
        self.bar.write(line) if self.bar is not None else print(line, flush=True)

    def on_step_end(self, trainer, step, loss, lr):
        if self.bar is not None:
            self.bar.update(1)
            if time.perf_counter() - self.last_postfix > 0.5:
                self.last_postfix = time.perf_counter()
                self.bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", refresh=False)

    def on_evaluate(self, trainer, record):
        self.write(f"step {record['step']}: train {record['train_loss']:.4f}, val {record['val_loss']:.4f}")
        self.print_warnings(trainer)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_end(self, trainer, reason):
        self.close()
        state, out_dir = trainer.state, trainer.out_dir
        step, last = state.global_step, state.last_eval
        resume = ("python" if trainer.world == 1 else f"torchrun --nproc-per-node {trainer.world}") + \
            f" train.py --out-dir {shlex.quote(str(out_dir))} --resume"
        kept = "" if state.model_step in (None, step) else \
            f"; the folder's model is step {state.model_step}'s (--keep best)"
        result = (f"step {step}, train {last['train_loss']:.4f}, val {last['val_loss']:.4f} "
                  f"(best {state.best_val_loss:.4f} at step {state.best_step}) in {trainer.elapsed():.0f} s; saved to "
                  f"{out_dir}{kept}")
        if reason == "stopped":
            print(f"stopped by {self.signals.name or 'request'} at step {step}: train {last['train_loss']:.4f}, val "
                  f"{last['val_loss']:.4f}; saved to {out_dir}{kept}. Continue with: {resume}", flush=True)
        elif reason == "time_limit":
            print(f"time limit (--max-seconds {trainer.settings.max_seconds:g}) reached: {result}. Continue with: "
                  f"{resume} --max-seconds SECONDS (a larger budget; the time so far counts)", flush=True)
        else:
            print(f"done: {result}", flush=True)


class StopOnSignal:
    """SIGINT/SIGTERM ask the trainer to save and stop at the end of the current step; a second one acts at once."""

    name, _previous = None, {}

    def install(self, trainer: Trainer) -> None:
        def handle(signum, frame):
            self.name = signal.Signals(signum).name
            self.uninstall()  # the next Ctrl-C or SIGTERM acts at once; the checkpoint on disk stays whole
            trainer.stop()

        self._previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def main(argv: list[str] | None = None, start_time: float | None = None) -> int:
    """`python train.py ...`: returns the exit status (see the module's docstring)."""
    start_time = time.perf_counter() if start_time is None else start_time
    given = vars(build_parser().parse_args(argv))
    is_main = os.environ.get("RANK", "0") == "0"
    signals, trainer = StopOnSignal(), None
    console = Console(signals)
    try:
        quiet_libraries()
        if is_main:  # what a killed --overwrite left beside the folder: removed, and said
            clean_leftovers(given.get("out_dir", DEFAULT_OUT_DIR), say=lambda line: print(line, flush=True))
        pusher = HubPusher(given["push_to_hub"], given.get("push_every_eval", False)) if "push_to_hub" in given \
            else None
        trainer, damage = setup(given, start_time, [console, ModelCardWriter(given.get("push_to_hub"))]
                                + ([pusher] if pusher else []))
        if damage:  # the resume state is whole but the model beside it is not: rewrite it from the resume state
            if is_main:
                print(f"note: {trainer.out_dir}'s model files are damaged or incomplete ({damage}); rewriting them "
                      f"from {TRAINING_STATE_NAME} (step {trainer.step})", flush=True)
            trainer.repair()
        if trainer.resumed and trainer.step >= trainer.settings.max_iters:
            if is_main:
                head = (f"repaired: {trainer.out_dir} is at step" if damage else
                        f"nothing to do: {trainer.out_dir} is already at step")
                print(f"{head} {trainer.step} and --max-iters is {trainer.settings.max_iters}; pass a larger "
                      "--max-iters to train further", flush=True)
            return 0
        signals.install(trainer)
        trainer.train()
        if pusher is not None and pusher.failed:
            if is_main:
                print(pusher.failure_line(trainer.out_dir), file=sys.stderr, flush=True)
            return PUSH_FAILED
        return 0
    except (ValueError, OSError) as err:  # bad input, a failed save or a diverged run: one line, no traceback
        console.close()
        if is_main:
            print(f"train.py: error: {one_line(err)}", file=sys.stderr, flush=True)
        return DIVERGED if isinstance(err, TrainingDiverged) else BAD_INPUT
    except KeyboardInterrupt:  # a second Ctrl-C: the folder keeps its last complete checkpoint
        if is_main:
            print("\ntrain.py: interrupted; the output folder keeps its last checkpoint", file=sys.stderr)
        return 130
    finally:
        signals.uninstall()
        if trainer is not None:
            trainer.close()


def setup(given: dict, start_time: float, callbacks: list) -> tuple[Trainer, str | None]:
    """The Trainer the flags ask for, and what is wrong with the model files of a resumed folder (None if nothing).
    Settings: defaults < the resumed run's < preset < flags; a resumed run is checked by the engine
    (`Trainer.resume`), with the same messages a notebook gets."""
    if given.get("push_every_eval") and not given.get("push_to_hub"):
        raise TrainingError("--push-every-eval needs --push-to-hub REPO_ID")
    out_dir = Path(given.get("out_dir", DEFAULT_OUT_DIR))
    changes = {k: v for k, v in given.items() if k not in RUN_OPTIONS}
    data = Path(given["data"]) if "data" in given else None
    run = dict(callbacks=callbacks, start_time=start_time, data_changed=given.get("data_changed", False))
    if given.get("resume"):
        trainer = Trainer.resume(out_dir, data_path=data, **run, **changes)
        return trainer, trainer.damage
    if given.get("init_from"):  # a fine-tune has the dimensions of the model it starts from
        from .finetune import base_config, conflicting_dims

        config = base_config(given["init_from"])
        conflicting_dims(given, config, given["init_from"])
        changes.update({k: getattr(config, k) for k in MODEL_DIMS})
    settings = TrainingSettings.resolve(changes)
    data_path = data if data is not None or settings.dataset else default_data_path()
    trainer = Trainer(settings, data_path=data_path, out_dir=out_dir, overwrite=given.get("overwrite", False),
                      data_name=given.get("data") or (str(data_path) if data_path else None), **run)
    return trainer, None


def default_data_path() -> Path:
    """data/tinyshakespeare.txt of the current folder, else of the repository tinygpt was installed from."""
    return DEFAULT_DATA if DEFAULT_DATA.exists() else REPO_ROOT / DEFAULT_DATA
