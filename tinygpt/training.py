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
from pathlib import Path

from .checkpoint import TRAINING_STATE_NAME, clean_leftovers, load_training_state, model_files_problem
from .common import OneLineArgumentParser, one_line, quiet_libraries
from .engine import TEXT_FILE_NAME, Trainer, TrainerCallback, _project_path
from .output_folder import folder_name
from .publish import HubPusher, ModelCardWriter
from .settings import MODEL_DIMS, TrainingDiverged, TrainingError, TrainingSettings, flag_name

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("data") / "tinyshakespeare.txt"
DEFAULT_OUT_DIR = "out"
BAD_INPUT, PUSH_FAILED, DIVERGED = 2, 3, 4


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """The settings' flags plus the run's own; every flag defaults to "not given" (SUPPRESS)."""
    p = OneLineArgumentParser(
        prog=prog, argument_default=argparse.SUPPRESS,
        description="Train a character-level GPT on any UTF-8 text. With no arguments: the blog series' settings "
        "on tiny Shakespeare. The output folder is a Hugging Face model folder (from_pretrained loads it) and is "
        "checkpointed atomically after every evaluation.",
        epilog="Several processes: `torchrun --nproc-per-node N train.py ...` or `accelerate launch "
        "--num_processes N train.py ...`. Each process samples its own --batch-size sequences, so one step sees "
        "batch_size x N sequences; --max-iters, --eval-interval and the schedule count optimizer steps, whatever N "
        "is. Explicit flags override the preset, and on --resume the settings saved in the folder. Exit status: 0 "
        "done or stopped by a signal, 2 bad input or a failed save, 3 trained and saved but the --push-to-hub "
        "upload failed (the `tinygpt push` command that retries it is printed), 4 the loss became NaN or infinite "
        "(the folder keeps its last good checkpoint; resume it with a lower --learning-rate), 130 a second Ctrl-C.",
    )
    io = p.add_argument_group("data and output")
    io.add_argument("--data", metavar="FILE", help=f"UTF-8 text file to train on (default: {DEFAULT_DATA}); one of "
                    "1 GiB or more is prepared once into a memory-mapped id file in the output folder")
    io.add_argument("--out-dir", metavar="DIR", type=folder_name, help=f"output folder (default: {DEFAULT_OUT_DIR}); "
                    "files of yours in it are never replaced without --overwrite")
    io.add_argument("--resume", action="store_true", help="continue the run saved in --out-dir, with its settings")
    io.add_argument("--overwrite", action="store_true", help="replace a model already in --out-dir (the old one "
                    "stays until the new run's first checkpoint takes its place in one move)")
    io.add_argument("--data-changed", action="store_true", help="with --resume: continue on a --data text other "
                    "than the run's (same characters); trainer_state.json records the step where it changed")
    io.add_argument("--preset", choices=TrainingSettings.list_presets(), help="seed: the blog series' "
                    "hyper-parameters (the defaults). cpu: best val loss per second on a laptop CPU: "
                    + ", ".join(f"{k} {v}" for k, v in TrainingSettings.PRESETS["cpu"].items()))
    groups = {title: p.add_argument_group(title) for title in (
        "model (the seed's names)", "optimisation", "evaluation and checkpoints", "runtime")}
    groups["data and output"] = io  # --init-from, --dataset and its options are settings
    TrainingSettings.add_arguments(p, groups)
    h = p.add_argument_group("Hugging Face Hub")
    h.add_argument("--push-to-hub", metavar="REPO_ID", help="push the folder to this Hub repo when training ends")
    h.add_argument("--push-every-eval", action="store_true", help="with --push-to-hub: also push after every checkpoint")
    return p


RUN_OPTIONS = ("data", "out_dir", "resume", "overwrite", "data_changed", "push_to_hub", "push_every_eval")


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
            trainer.save(trainer.step)
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
    """The settings (defaults < preset < the resumed run's < flags), the data and the folder, checked; the Trainer,
    and what is wrong with the model files of a resumed folder (None if nothing)."""
    out_dir = Path(given.get("out_dir", DEFAULT_OUT_DIR))
    resume = given.get("resume", False)
    if given.get("data_changed") and not resume:
        raise TrainingError("--data-changed goes with --resume: it accepts a different text for a run that continues")
    state = None
    if resume:
        if not out_dir.is_dir():
            raise TrainingError(f"--resume: {out_dir} does not exist; there is no run to continue")
        state = load_training_state(out_dir)
    if state and given.get("init_from") and _project_path(given["init_from"]) != state["settings"].get("init_from") \
            and given["init_from"] != state["settings"].get("init_from"):
        raise TrainingError(f"--resume: {out_dir} was started from {state['settings'].get('init_from') or 'scratch'}, "
                            f"not --init-from {given['init_from']}; leave --init-from out to continue it")
    if given.get("init_from") and not state:  # a fine-tune has the dimensions of the model it starts from
        from .finetune import base_config, conflicting_dims

        config = base_config(given["init_from"])
        conflicting_dims(given, config, given["init_from"])
        given = dict(given, **{k: getattr(config, k) for k in MODEL_DIMS})
    settings = TrainingSettings.resolve({k: v for k, v in given.items() if k not in RUN_OPTIONS},
                                        saved=state["settings"] if state else None)
    if "data" in given and settings.dataset:
        raise TrainingError("give the text either with --data FILE or with --dataset NAME, not both")
    if state:
        saved = state["settings"]
        # A dimension differs because a flag asked for it or because --preset brought it (then it is not in given).
        changed = [f"{flag_name(k)} {getattr(settings, k)}{'' if k in given else f' (from --preset {settings.preset})'}"
                   f" (saved: {saved.get(k)})" for k in MODEL_DIMS if getattr(settings, k) != saved.get(k)]
        if changed:
            raise TrainingError(
                f"--resume: {out_dir} holds a model of different dimensions than asked: {', '.join(changed)}. "
                "Resume with the saved dimensions, or start a new model with --overwrite or another --out-dir"
            )
        if "data" not in given and not state["data_path"] and not settings.dataset \
                and not (out_dir / TEXT_FILE_NAME).is_file():
            raise TrainingError(f"--resume: {out_dir} was trained on a text given in memory; pass it with --data")
    if given.get("push_every_eval") and not given.get("push_to_hub"):
        raise TrainingError("--push-every-eval needs --push-to-hub REPO_ID")
    if settings.dataset:
        data_path = None
    elif "data" in given:
        data_path = Path(given["data"])
    else:
        # A text given in memory (the demo's) was saved in the folder as train.txt.
        data_path = (Path(state["data_path"]) if state["data_path"] else out_dir / TEXT_FILE_NAME) if state \
            else default_data_path()
    display = (given.get("data") or (state["data"]["path"] if state else str(data_path))) if data_path else None
    trainer = Trainer(settings, data_path=data_path, out_dir=out_dir, callbacks=callbacks, resume_state=state,
                      overwrite=given.get("overwrite", False), data_name=display, start_time=start_time,
                      data_changed=given.get("data_changed", False))
    return trainer, model_files_problem(out_dir, state) if state else None


def default_data_path() -> Path:
    """data/tinyshakespeare.txt of the current folder, else of the repository tinygpt was installed from."""
    return DEFAULT_DATA if DEFAULT_DATA.exists() else REPO_ROOT / DEFAULT_DATA
