"""The training engine: the seed's loop as one readable recipe, for train.py, the demo's Train tab and a notebook.

    trainer = Trainer(TrainingSettings.from_preset("cpu"), text=my_text, out_dir="out", callbacks=[MyCallback()])
    trainer.train()  # -> "finished" | "stopped" | "time_limit"
    Trainer.resume("out", max_iters=4800).train()  # continue it exactly, checked as train.py --resume checks it

`Trainer` is the recipe (torchtune's style): `setup` builds the run, `train` is the final post's loop (batch,
forward, backward, AdamW step; `evaluate()` every `eval_interval` steps, now with a sample of text, then a `save`;
`sample_interval` and `save_interval` make those two rarer than the losses, as the demo's Train tab does).
A run that ends early (stop(), the time limit) is evaluated at the step it ended before it is saved, so what it
offers is measured on the weights offered. The parts are components, each in its own small module:

    run_data.py          the text: read, split the seed's way, described for trainer_state.json
    resume.py            resuming a saved run, with all its checks (train.py --resume and `Trainer.resume` alike)
    checkpointer.py      what a checkpoint holds, and the best weights (atomic writes: checkpoint.py)
    lr_schedule.py       the learning-rate schedule, as torch's LambdaLR
    divergence.py        NaN/inf losses caught without a device sync per step
    memorising.py        the learner-facing warnings: memorising, val loss rising
    trainer_callback.py  the events, to which everything else subscribes
    paths.py             how the paths a run is given are recorded (from the project root)

What the run has done is `trainer.state` (`run_state.RunState`, after transformers' `TrainerState`): the engine
updates it, callbacks read it, and each checkpoint's trainer_state.json is it saved. This module imports no card
writer and no command-line module (the card is a subscriber too: `publish.ModelCardWriter`). Accelerate runs it on
1 to N processes (`torchrun`); only the main one writes and sees events.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import threading
import time
from pathlib import Path

import torch

from .checkpoint import prepare_out_dir
from .checkpointer import Checkpointer
from .configuration_tinygpt import TinyGPTConfig
from .data import get_batch
from .device import resolve_device
from .divergence import LossWatch
from .generation import generation_kwargs
from .lr_schedule import lr_scheduler
from .memorising import OVERFITTING, overfitting_warning, repeats_warning
from .memory import check_fits, check_start_fits
from .paths import record_sources, recorded_path, sources_to_open
from .resume import ResumePoint, check_same_text, open_run, restore
from .run_data import read_run_data
from .run_state import RunState
from .settings import DTYPES, TrainingDiverged, TrainingError, TrainingSettings
from .trainer_callback import TrainerCallback

__all__ = ["Trainer", "TrainerCallback"]  # TrainerCallback lives in trainer_callback.py; importable from here too

SAMPLE_LENGTH = 300  # characters of text generated at every evaluation
COMPILE_BACKEND = "inductor"  # torch.compile's backend for --compile (tests use "eager": the same path, no C++ build)


def due(step: int, interval: int | None) -> bool:
    """Whether an evaluation at `step` also samples (sample_interval) or saves (save_interval): None = at every
    evaluation, 0 = never (the run's end does both anyway), else at the interval's multiples."""
    return interval is None or bool(interval) and step % interval == 0


class Trainer:
    """One training run: build it from settings and a text (`text=` or `data_path=`, or the dataset setting), then
    `train()`. Bad input raises TrainingError/ValueError here. `overwrite` replaces a model already in `out_dir`
    (at the first save, in one move). `run_name` is how the card's load snippet and the reproduce command name the
    model (default: `out_dir`); a server that trains into a temporary folder names the run after what the user
    downloads instead. `init_from` (a model folder or Hub repo id, the same as the init_from setting) fine-tunes
    that model: its dimensions replace the settings'. `train()` raises CheckpointError when a save fails and
    TrainingDiverged when the loss stops being finite; the folder keeps its last good checkpoint.

    To continue a saved run, use `Trainer.resume(out_dir, ...)`: it checks the folder and builds the trainer with
    `resume_from` (a `resume.ResumePoint`), on the same text unless `data_changed` (then trainer_state.json's
    "data" records the step)."""

    def __init__(self, settings: TrainingSettings, text: str | None = None, data_path=None, out_dir="out",
                 callbacks=(), *, overwrite=False, data_name=None, start_time=None, sample_length=SAMPLE_LENGTH,
                 run_name=None, init_from=None, data_changed=False, resume_from: ResumePoint | None = None):
        if data_changed and resume_from is None:
            raise TrainingError("--data-changed goes with --resume: it accepts a different text for a run that "
                                "continues")
        if init_from is not None:
            settings = dataclasses.replace(settings, init_from=str(init_from))
        saved = resume_from.state if resume_from is not None else None
        self.sources = sources_to_open(settings, saved)  # --init-from, --dataset: opened as given (or as recorded)
        settings = record_sources(settings, self.sources)  # ... and recorded as the reproduce command names them
        if settings.dataset and (text is not None or data_path is not None):
            raise TrainingError("give the text either with --data FILE or with --dataset NAME, not both")
        if sum(x is not None for x in (text, data_path, settings.dataset)) != 1:
            raise TrainingError("give the training text either as text= or as data_path= (or the dataset setting), "
                                "not several or none")
        self.settings = s = settings
        self.out_dir = Path(out_dir)
        self.run_name = str(run_name) if run_name else recorded_path(self.out_dir)
        self.callbacks = list(callbacks)
        self.start_time = time.perf_counter() if start_time is None else start_time
        self.sample_length = sample_length
        self._stop = threading.Event()
        self.resumed = resume_from is not None
        self.damage = resume_from.damage if resume_from else None  # a resumed folder's damaged model files

        device = resolve_device(s.device)
        if s.dtype == "fp16" and device.type == "cpu":
            raise TrainingError("--dtype fp16 needs a GPU (it relies on a gradient scaler); on CPU use bf16 or fp32")
        check_start_fits(s, device, None if saved else self.sources.get("init_from"))  # before allocating
        from accelerate import Accelerator

        # --compile is applied here, not through Accelerator(dynamo_backend=): Accelerate keeps that choice in a
        # process-wide singleton, so a second Trainer in the same process (a notebook, the demo) would silently
        # get the first one's.
        self.accelerator = acc = Accelerator(cpu=device.type == "cpu", mixed_precision=DTYPES[s.dtype])
        self.device, self.rank, self.world, self.is_main = acc.device, acc.process_index, acc.num_processes, \
            acc.is_main_process
        if s.report_targets():  # --report-to: trackers subscribe like any callback (a missing extra fails here)
            from .tracking import reporting_callbacks

            self.callbacks += reporting_callbacks(s.report_targets())
        created = prepare_out_dir(self.out_dir, self.resumed, overwrite, self.is_main, writes_text=text is not None)
        try:
            self.setup(text, data_path, data_name, resume_from, data_changed, overwrite)
        except BaseException:
            if created:  # leave no empty folder behind a run that could not start
                shutil.rmtree(self.out_dir, ignore_errors=True)
            raise

    @classmethod
    def resume(cls, out_dir, callbacks=(), *, data_path=None, text: str | None = None, data_changed=False,
               start_time=None, sample_length=SAMPLE_LENGTH, **changes) -> Trainer:
        """The run saved in `out_dir`, ready to continue exactly where its last checkpoint is, with its saved
        settings under `changes` (keyword settings, e.g. `max_iters=6000`; the model's dimensions cannot change),
        on the text it was trained on unless `data_path=` or `text=` gives it (other content needs
        `data_changed=True`). Every check and message is train.py --resume's (`resume.open_run`)."""
        point = open_run(out_dir, changes, data_path=data_path, text=text)
        return cls(point.settings, text=text, data_path=point.data_path, out_dir=out_dir, callbacks=callbacks,
                   data_name=point.data_name, start_time=start_time, sample_length=sample_length,
                   data_changed=data_changed, resume_from=point)

    def setup(self, text, data_path, data_name, resume_from: ResumePoint | None, data_changed: bool,
              overwrite: bool) -> None:
        """The run's parts: the text, the model (new, fine-tuned or resumed), the run state, the optimizer and its
        schedule, the random streams and the checkpointer; a resumed run then takes back everything it saved."""
        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        saved = resume_from.state if resume_from is not None else None
        base_model, base_chars = self._base_model(saved)  # a fine-tune's base sets the model's dimensions
        s = self.settings
        # Data: ids of the whole text, the seed's 90/10 split; the vocabulary is every character of the text.
        self.data = read_run_data(s, self.out_dir, self.run_name, self.accelerator, text=text, data_path=data_path,
                                  data_name=data_name, base_chars=base_chars, dataset=self.sources.get("dataset"))
        if saved is not None:
            self.data.info.update(check_same_text(self.data, saved, self.out_dir, data_changed))
        self.train_data, self.val_data, self.chars = self.data.train, self.data.val, self.data.chars
        self._setup_model(base_model, saved)
        # A text given in memory is read back from the folder's copy (`run_name/train.txt`): the command trains a
        # model of its own beside that folder, not into it (it holds this model, which train.py would refuse).
        command_out_dir = f"{self.run_name}-again" if text is not None else self.run_name
        self.state = RunState(
            max_steps=s.max_iters, n_params=sum(p.numel() for p in self.model.parameters()), num_processes=self.world,
            train_batch_size=s.batch_size, training_args=dict(s.to_dict(), num_processes=self.world),
            data=self.data.info, command=s.to_command(self.data.info["path"], command_out_dir, self.world),
            run_name=self.run_name,
        )
        warning = repeats_warning(self.data.repeats)
        if warning:
            self.state.warn(warning)
        self._setup_optimizer()
        # Random streams: this process's batches (seed + process index) and its dropout (torch's global RNG).
        self.sampler = torch.Generator().manual_seed(s.seed + self.rank)
        torch.manual_seed(s.seed + self.rank)
        self.prior_elapsed = 0.0
        self.checkpointer = Checkpointer(self.out_dir, replace_old_model=overwrite and saved is None)
        self.losses = LossWatch(self.accelerator)  # since the last finiteness check: no sync to keep them
        self.resume_note = None
        if saved is not None:
            restore(self, saved)
        # Not prepared (Accelerate would step it once per process), and over the torch optimizer inside Accelerate's
        # wrapper, which every optimizer step goes through (torch's scheduler checks it stepped first).
        self.scheduler = lr_scheduler(getattr(self.optimizer, "optimizer", self.optimizer), s, self.step)

    def _base_model(self, saved):
        """(model, its characters) a fine-tune starts from, its dimensions now the settings'; a resumed fine-tune
        has only the base's characters (its weights are in its state); a run from scratch has neither."""
        if saved is not None:
            return None, saved["chars"][: saved["data"].get("base_vocab_size", 0)]
        if not self.settings.init_from:
            return None, ()
        from .finetune import load_base

        base_model, base_chars = load_base(self.sources["init_from"])
        self.settings = self.settings.with_model_dims(base_model.config)
        return base_model, base_chars

    def _setup_model(self, base_model, saved) -> None:
        """The tokenizer of the run's characters and the model: fresh weights (the same in every process), then
        the base's (a fine-tune) or the saved ones (a resumed run)."""
        from .modeling_tinygpt import TinyGPTForCausalLM
        from .tokenization import tokenizer_from_characters

        self.tokenizer = tokenizer_from_characters(self.chars)
        torch.manual_seed(self.settings.seed)  # the same initial weights in every process
        check_fits(self.settings, self.device, len(self.chars), base=self.settings.init_from)  # before the model
        self.model = TinyGPTForCausalLM(self._model_config(base_model, saved))
        if base_model is not None:
            from .finetune import copy_base_weights

            copy_base_weights(base_model, self.model)
        if saved is not None:
            self.model.load_state_dict(saved["model"])

    def _model_config(self, base_model, saved) -> TinyGPTConfig:
        """A new model's config from the settings; a fine-tune's from its base (grown vocabulary, this dropout)."""
        s = self.settings
        if base_model is None and saved is not None and saved.get("model_config"):
            base = TinyGPTConfig.from_dict(json.loads(saved["model_config"]))  # a resumed fine-tune
        elif base_model is not None:
            base = base_model.config
        else:
            return s.model_config(vocab_size=len(self.chars))
        from .finetune import grown_config

        return grown_config(base, len(self.chars), s.dropout)

    def _setup_optimizer(self) -> None:
        """AdamW (fused: one kernel for all parameters), prepared by Accelerate (the DDP wrapper), compiled last."""
        s = self.settings
        fused = {"fused": True} if self.device.type in ("cuda", "cpu", "mps") else {}
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=s.learning_rate, betas=(s.beta1, s.beta2),
                                      weight_decay=s.weight_decay, **fused)
        self._wrapped, self.optimizer = self.accelerator.prepare(self.model, optimizer)
        if s.compile:  # last, around the DDP wrapper, as Accelerate does it
            self._wrapped = torch.compile(self._wrapped, backend=COMPILE_BACKEND)

    # The run's numbers live in `self.state`; these names are kept for callers written before it existed.
    step = property(lambda self: self.state.global_step, lambda self, v: setattr(self.state, "global_step", v))
    log_history = property(lambda self: self.state.log_history)
    best_val_loss = property(lambda self: self.state.best_val_loss)
    n_params = property(lambda self: self.state.n_params)
    data_info = property(lambda self: self.state.data)

    # ----------------------------------------------------------------------------------------------- the loop

    def train(self) -> str:
        """Train to max_iters (or a stop, or the time limit); save; return why it ended."""
        s, step = self.settings, self.step
        self.state.status = "training"
        try:
            if self.damage:
                self.repair()
            self._emit("on_train_begin")
            while (reason := self._end_reason(step)) is None:
                if step % s.eval_interval == 0 and not self._evaluated(step):
                    self.evaluate(step, sample=due(step, s.sample_interval))
                    if due(step, s.save_interval):
                        self.save(step)
                loss = self.train_step(step)
                step = self.step = step + 1
                if self.losses.add(step - 1, loss):  # every FINITE_CHECK_EVERY steps, one device sync
                    self._check_finite()
                self._emit("on_step_end", step, loss, s.learning_rate_at(step - 1))
            self.state.status = reason  # recorded in the last checkpoint
            if not self._evaluated(step):  # the final model's losses and sample: a stopped one too, never older ones
                self.evaluate(step)
            elif "sample" not in self.log_history[-1]:  # evaluated here for its losses only (a resumed run's last)
                self.log_history[-1]["sample"] = self.sample() if self.is_main else ""
            if self.checkpointer.saved_step != step:
                self.save(step)
            self._emit("on_train_end", reason)
            return reason
        finally:
            self.close()

    def train_step(self, step: int) -> torch.Tensor:
        """One optimizer step of the seed's loop; returns the loss tensor (read it only when you must)."""
        s = self.settings
        x, y = get_batch(self.train_data, s.block_size, s.batch_size, self.sampler, self.device)
        loss = self._wrapped(x, shift_labels=y).loss  # the seed's F.cross_entropy over all B*T positions
        acc = self.accelerator
        if acc.scaler is not None or acc.gradient_accumulation_steps != 1 or \
                acc.distributed_type not in ("NO", "MULTI_CPU", "MULTI_GPU"):  # fp16 scaling, DeepSpeed, FSDP, XLA
            acc.backward(loss)
            if s.grad_clip:
                acc.clip_grad_norm_(self._wrapped.parameters(), s.grad_clip)
            self.optimizer.step()
            self.scheduler.step()  # the next step's rate (lr_schedule.py)
            self.optimizer.zero_grad(set_to_none=True)
            return loss
        # Otherwise Accelerate's wrappers add nothing but per-step Python (each optimizer step and zero_grad look for
        # installed packages on disk and read the optimizer's signature; its clipping walks the model's modules):
        # ~0.5 ms of a ~15 ms step here (benchmarks/README.md). torch does the same math directly; DDP still averages
        # the gradients in backward().
        optimizer = self.optimizer.optimizer
        loss.backward()
        if s.grad_clip:  # one norm over all gradients, as clip_grad_norm_ always computes it; foreach: one call
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, s.grad_clip, foreach=True)
        optimizer.step()
        self.scheduler.step()  # the next step's rate (lr_schedule.py)
        optimizer.zero_grad(set_to_none=True)
        return loss

    def stop(self) -> None:
        """Ask the run to finish its current step, save and end ("stopped"); safe from any thread."""
        self._stop.set()

    def elapsed(self) -> float:
        """Seconds of training so far, a resumed run's earlier ones included."""
        return self.prior_elapsed + time.perf_counter() - self.start_time

    def _end_reason(self, step: int) -> str | None:
        """"finished" (max_iters reached), "stopped" (stop() was called), "time_limit", or None to go on."""
        if step >= self.settings.max_iters:
            return "finished"
        limit = self.settings.max_seconds
        wanted = 1 if self._stop.is_set() else 2 if limit is not None and self.elapsed() >= limit else 0
        if self.world > 1:  # every process must stop at the same step; a collective every 10 steps
            if step % 10 and step % self.settings.eval_interval:
                return None
            wanted = int(self.accelerator.gather(torch.tensor([wanted], device=self.device)).max())
        return (None, "stopped", "time_limit")[wanted]

    def _check_finite(self) -> None:
        """Raise TrainingDiverged naming the first step whose training loss was NaN or infinite (on any process),
        from the losses kept since the last check (`divergence.LossWatch`)."""
        bad = self.losses.first_bad()
        if bad is not None:
            self._diverged(*bad)

    def _diverged(self, step: int, value: float) -> None:
        """Stop with the folder as it is: its last checkpoint is the last good model."""
        self.state.status = "diverged"
        raise TrainingDiverged(step, value, self.settings.learning_rate_at(step), self.out_dir,
                               self.checkpointer.saved_step)

    def _evaluated(self, step: int) -> bool:
        return bool(self.log_history) and self.log_history[-1]["step"] == step

    def _emit(self, event: str, *args) -> None:
        if self.is_main:
            for callback in self.callbacks:
                getattr(callback, event)(self, *args)

    # ----------------------------------------------------------------------------------------------- evaluation

    def evaluate(self, step: int, sample: bool = True) -> dict:
        """Losses and a sample of the model as it is at `step`, recorded in the state (and announced); a
        non-finite loss (since the last check, or now) raises TrainingDiverged before anything is sampled.
        `sample=False` (between the sample_interval's evaluations): the losses only, a record without "sample"."""
        self._check_finite()
        train_loss, val_loss = self.estimate_loss()
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):  # the last update broke the weights
            self._diverged(step, val_loss if not math.isfinite(val_loss) else train_loss)
        record = {"step": step, "train_loss": train_loss, "val_loss": val_loss,
                  "lr": self.settings.learning_rate_at(max(step - 1, 0)),  # the rate of the step that led here
                  "elapsed_s": round(self.elapsed(), 3)}
        if sample:
            record["sample"] = self.sample() if self.is_main else ""
        self.state.elapsed_s = record["elapsed_s"]
        if self.state.record_evaluation(record) and self.settings.keep == "best":
            self.checkpointer.keep_best(self.model, step)
        note = overfitting_warning(self.state.log_history)
        if note:
            self.state.warn(note, kind=OVERFITTING)
        self._emit("on_evaluate", record)
        return record

    @torch.no_grad()
    def estimate_loss(self) -> tuple[float, float]:
        """The seed's estimate_loss: mean loss of eval_iters batches of each split, averaged over processes.

        Batches come from generators seeded afresh at every evaluation (the same batches each time, a different
        set per process), so evaluating never moves the training random streams, and a resumed run logs exactly
        the numbers an uninterrupted one would.
        """
        s = self.settings
        self.model.eval()
        means = []
        for index, data in enumerate((self.train_data, self.val_data)):
            generator = torch.Generator().manual_seed(0x5EED_0000_0000 + 1024 * (s.seed + self.rank) + index)
            losses = torch.zeros(s.eval_iters, device=self.device)
            for k in range(s.eval_iters):
                x, y = get_batch(data, s.block_size, s.eval_batch_size or s.batch_size, generator, self.device)
                with self.accelerator.autocast():
                    losses[k] = self.model(x, shift_labels=y, use_cache=False).loss
            means.append(losses.mean())
        self.model.train()
        means = torch.stack(means)
        if self.world > 1:
            means = self.accelerator.reduce(means, reduction="mean")
        return tuple(means.tolist())

    @torch.no_grad()
    def sample(self, weights: dict | None = None) -> str:
        """`sample_length` characters generated from a newline (else id 0) with the run's seed, inside `fork_rng`,
        so it never moves the training's random streams. `weights` (a state dict: the kept best ones) are sampled
        instead of the model's own, which are then put back exactly."""
        if weights is not None:
            current = {name: tensor.clone() for name, tensor in self.model.state_dict().items()}
            self.model.load_state_dict(weights)
            try:
                return self.sample()
            finally:
                self.model.load_state_dict(current)
        start = self.tokenizer.convert_tokens_to_ids("\n") if "\n" in self.chars else 0
        input_ids = torch.tensor([[start]], device=self.device)
        accelerated = self.device.type in ("cuda", "mps")
        self.model.eval()
        with torch.random.fork_rng(devices=[self.device.index or 0] if accelerated else [],
                                   device_type=self.device.type if accelerated else "cuda"):
            torch.manual_seed(self.settings.seed)
            # inference_mode: no version counters or views tracked, 10-15 % off a sample here (the same text)
            with self.accelerator.autocast(), torch.inference_mode():
                out = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                          **generation_kwargs(self.sample_length, 1.0, 0, 1.0))
        self.model.train()
        return self.tokenizer.decode(out[0].tolist())

    # ----------------------------------------------------------------------------------------------- saving

    def save(self, step: int) -> None:
        """Checkpoint `step` into the output folder (`checkpointer.Checkpointer`); every process takes part, the
        main one writes. Never a non-finite model (TrainingDiverged instead). A failed write raises CheckpointError:
        the folder keeps what it held."""
        self._check_finite()
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self._diverged(step, float("nan"))
        self._sample_kept(step)
        self.checkpointer.save(self, step, on_checkpoint=lambda folder: self._emit("on_checkpoint", step, folder))
        self._emit("on_save", step, self.out_dir)

    def _sample_kept(self, step: int) -> None:
        """The card and the page show the sample of the weights the folder holds: where their evaluation recorded
        losses only (sample_interval), sample them now (the kept best copy, or the model itself) into that record."""
        kept = self.checkpointer.model_step(step)
        record = next((r for r in reversed(self.log_history) if r["step"] == kept), None)
        if record is not None and "sample" not in record:
            weights = self.checkpointer.best_weights if kept != step else None
            record["sample"] = self.sample(weights) if self.is_main else ""

    def repair(self) -> None:
        """Rewrite the model files of a resumed folder that are damaged or incomplete (`damage`) from its resume
        state, at its step; `train()` does it first."""
        self.save(self.step)
        self.damage = None

    def close(self) -> None:
        """Free the optimizer and the DDP wrapper, then the process group. Left to garbage collection, DDP's
        reducer can be the gloo group's last owner and join its threads holding the GIL: a deadlock at exit."""
        if self.optimizer is not None:
            self.scheduler = None
            self._wrapped, self.optimizer = self.accelerator.free_memory(self._wrapped, self.optimizer)
            self.model.eval()
            self.accelerator.end_training()
