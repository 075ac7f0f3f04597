"""The training engine: the seed's loop, one entry point for train.py, the demo's Train tab and a notebook.

    trainer = Trainer(TrainingSettings.from_preset("cpu"), text=my_text, out_dir="out", callbacks=[MyCallback()])
    trainer.train()  # -> "finished" | "stopped" | "time_limit"

The loop is the final post's (batch, forward, backward, AdamW step; `estimate_loss()` every `eval_interval`
steps, now with a sample of text), and each evaluation is followed by an atomic checkpoint (`tinygpt.checkpoint`)
that loads with `from_pretrained` and resumes bit for bit. A run that ends early (stop(), the time limit) is
evaluated at the step it ended before it is saved, so what it offers is measured on the weights offered.

What the run has done is `trainer.state` (`tinygpt.run_state.RunState`, after transformers' `TrainerState`): the
engine updates it, callbacks read it, and each checkpoint's trainer_state.json is it saved. Everything else
subscribes to `TrainerCallback`'s events, the model card too (`publish.ModelCardWriter`): this module imports
no card writer and no command-line module. Accelerate runs it on 1 to N processes (`torchrun`); only the main
one writes and sees events.
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

from .checkpoint import (
    TRAINING_STATE_NAME, CheckpointError, capture_rng, carried_over, describe_save_error, holds_model,
    prepare_out_dir, replace_folder, restore_rng, save_training_state, write_checkpoint,
)
from . import data as data_module
from .configuration_tinygpt import TinyGPTConfig
from .corpus import iter_corpus
from .data import (
    PREPARED_DIR, check_split_lengths, encode_corpus, encode_text, file_source, get_batch, prepare_ids,
    val_repeats_train,
)
from .device import resolve_device
from .generation import generation_kwargs
from .memory import check_fits, check_start_fits
from .paths import PROJECT_ROOT, sources_to_open  # noqa: F401 - PROJECT_ROOT: where the reproduce command runs
from .paths import record_sources as _project_paths, recorded_path as _project_path
from .run_state import RunState
from .settings import DTYPES, TrainingDiverged, TrainingError, TrainingSettings

SAMPLE_LENGTH = 300  # characters of text generated at every evaluation
TEXT_FILE_NAME = "train.txt"  # a text given in memory, saved beside the model so the run can be repeated/resumed
COMPILE_BACKEND = "inductor"  # torch.compile's backend for --compile (tests use "eager": the same path, no C++ build)
REPEATS_WARNING = 0.25  # warn when more than this share of the val passages occur in the training text
# The training losses are checked for NaN/inf at every evaluation and save, and at least this often: one device
# sync per this many steps (none on the hot path), so a diverged run stops within this many steps.
FINITE_CHECK_EVERY = 100


class TrainerCallback:
    """What a run reports; subclass and override what you need (every method is a no-op here).

    Every event gets the trainer first; what the run has done so far is `trainer.state` (a `RunState`: global_step,
    max_steps, log_history, best_val_loss, best_step, model_step, elapsed_s, n_params, status, warnings, data,
    command, run_name, ...), already updated when the event comes. Read it; only the engine writes it. The run's
    settings are `trainer.settings`, its folder `trainer.out_dir`; `trainer.stop()` asks it to end (with a save).
    """

    def on_train_begin(self, trainer): ...  # state.global_step is the first step (not 0 when resumed)
    def on_step_end(self, trainer, step, loss, lr): ...  # `step` steps done; loss: a 0-dim tensor (.item() syncs)
    def on_evaluate(self, trainer, record): ...  # state.log_history[-1]: {"step", "train_loss", "val_loss", "lr",
    #                                             "elapsed_s", "sample"}; state.warnings may have grown
    def on_checkpoint(self, trainer, step, folder): ...  # add files to the checkpoint being written in `folder`
    def on_save(self, trainer, step, out_dir): ...  # a complete checkpoint of `step` is in out_dir
    def on_train_end(self, trainer, reason): ...  # reason == state.status: "finished" | "stopped" | "time_limit"


class Trainer:
    """One training run: build it from settings and a text (`text=` or `data_path=`), then `train()`. Bad input
    raises TrainingError/ValueError here. `resume_state` (`checkpoint.load_training_state`) continues a saved
    run exactly, on the same text unless `data_changed` (then trainer_state.json's "data" records the step);
    `overwrite` replaces a model already in `out_dir` (at the first save, in one move). `run_name` is how the
    card's load snippet and the reproduce command name the model (default: `out_dir`); a server that trains into a
    temporary folder names the run after what the user downloads instead. `init_from` (a model folder or Hub
    repo id, the same as the init_from setting) fine-tunes that model: its dimensions replace the settings'.
    `train()` raises CheckpointError when a save fails and TrainingDiverged when the loss stops being finite; the
    folder keeps its last good checkpoint.

    The engine imports no card writer and no command-line module: train.py and the demo subscribe
    `publish.ModelCardWriter` (card + loss plot in every checkpoint) like any other callback."""

    def __init__(self, settings: TrainingSettings, text: str | None = None, data_path=None, out_dir="out",
                 callbacks=(), *, resume_state=None, overwrite=False, data_name=None, start_time=None,
                 sample_length=SAMPLE_LENGTH, run_name=None, init_from=None,
                 data_changed=False):
        if init_from is not None:
            settings = dataclasses.replace(settings, init_from=str(init_from))
        self.sources = sources_to_open(settings, resume_state)  # opened as given; recorded from the project root
        settings = _project_paths(settings, self.sources)
        if sum(x is not None for x in (text, data_path, settings.dataset)) != 1:
            raise TrainingError("give the training text either as text= or as data_path= (or the dataset setting), "
                                "not several or none")
        self.settings = s = settings
        self.out_dir = Path(out_dir)
        self.run_name = str(run_name) if run_name else _project_path(self.out_dir)
        self.callbacks = list(callbacks)
        self.start_time = time.perf_counter() if start_time is None else start_time
        self.sample_length = sample_length
        self._stop = threading.Event()
        self._replace_old_model = overwrite and resume_state is None

        device = resolve_device(s.device)
        if s.dtype == "fp16" and device.type == "cpu":
            raise TrainingError("--dtype fp16 needs a GPU (it relies on a gradient scaler); on CPU use bf16 or fp32")
        check_start_fits(s, device, None if resume_state else self.sources.get("init_from"))  # before allocating
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
        created = prepare_out_dir(self.out_dir, resume_state is not None, overwrite, self.is_main,
                                  writes_text=text is not None)
        try:
            self._build(text, data_path, data_name, resume_state, data_changed)
        except BaseException:
            if created:  # leave no empty folder behind a run that could not start
                shutil.rmtree(self.out_dir, ignore_errors=True)
            raise

    def _build(self, text, data_path, data_name, resume_state, data_changed=False):
        from .modeling_tinygpt import TinyGPTForCausalLM
        from .tokenization import tokenizer_from_characters

        s = self.settings
        if s.threads:
            torch.set_num_threads(s.threads)
        # A fine-tune starts from a model (its dims, weights and vocabulary first); a resumed one from its state.
        base_model, base_chars = None, ()
        if resume_state is not None:
            base_chars = resume_state["chars"][: resume_state["data"].get("base_vocab_size", 0)]
        elif s.init_from:
            from .finetune import load_base

            base_model, base_chars = load_base(self.sources["init_from"])
            self.settings = s = s.with_model_dims(base_model.config)
        # Data: ids of the whole text, the seed's 90/10 split; the vocabulary is every character of the text.
        corpus = self._read_corpus(text, data_path, data_name, base_chars)
        self.train_data, self.val_data = corpus.split()
        check_split_lengths(self.train_data, self.val_data, s.block_size, corpus.path)
        self.chars = corpus.chars
        self.data_path = Path(data_path).resolve() if data_path is not None else None
        self.text = text  # kept to be saved as train.txt at the first save (a text given in memory)
        repeats = val_repeats_train(self.train_data, self.val_data, s.block_size)
        data_info = {
            "name": Path(data_path).name if data_path is not None else s.dataset or data_name or "text",
            # How the reproduce command names the text: its path from the project root (else its absolute path),
            # or the copy saved in the folder for a text given in memory (a dataset names itself: no path).
            "path": _project_path(data_path) if data_path is not None
            else None if s.dataset else f"{self.run_name}/{TEXT_FILE_NAME}",
            "characters": len(corpus), "vocab_size": len(self.chars), "val_repeats_train": round(repeats, 4),
        }
        if base_chars:  # a fine-tune's vocabulary starts with the base model's characters
            data_info["base_vocab_size"] = len(base_chars)
        self.data_fingerprint = corpus.fingerprint()
        if resume_state is not None:
            data_info.update(self._check_same_text(corpus, resume_state, data_changed))
        self.tokenizer = tokenizer_from_characters(self.chars)
        torch.manual_seed(s.seed)  # the same initial weights in every process
        check_fits(s, self.device, len(self.chars), base=s.init_from)  # with the vocabulary, before the model
        self.model = TinyGPTForCausalLM(self._model_config(base_model, resume_state))
        if base_model is not None:
            from .finetune import copy_base_weights

            copy_base_weights(base_model, self.model)
        if resume_state is not None:
            self.model.load_state_dict(resume_state["model"])
        self.state = RunState(
            max_steps=s.max_iters, n_params=sum(p.numel() for p in self.model.parameters()), num_processes=self.world,
            train_batch_size=s.batch_size, training_args=dict(s.to_dict(), num_processes=self.world), data=data_info,
            command=s.to_command(data_info["path"], self.run_name, self.world), run_name=self.run_name,
        )
        if repeats > REPEATS_WARNING:
            self.state.warn(repeats_warning(repeats))
        fused = {"fused": True} if self.device.type in ("cuda", "cpu", "mps") else {}  # one kernel for all params
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=s.learning_rate_at(0), betas=(s.beta1, s.beta2),
                                      weight_decay=s.weight_decay, **fused)
        self._wrapped, self.optimizer = self.accelerator.prepare(self.model, optimizer)  # the DDP wrapper
        if s.compile:  # last, around the DDP wrapper, as Accelerate does it
            self._wrapped = torch.compile(self._wrapped, backend=COMPILE_BACKEND)

        # Random streams: this process's batches (seed + process index) and its dropout (torch's global RNG).
        self.sampler = torch.Generator().manual_seed(s.seed + self.rank)
        torch.manual_seed(s.seed + self.rank)
        self.prior_elapsed = 0.0
        # keep=best: a copy of the weights of the best evaluation so far, and its step; model.safetensors gets them
        # (training_state.pt always holds the latest weights, so --resume continues the last step exactly).
        self.best_weights, self.best_weights_step = None, None
        self.saved_step = None  # the step the folder's checkpoint holds
        self._unchecked_losses = []  # (step, loss tensor) since the last finiteness check: no sync to keep them
        self.resumed, self.resume_note = resume_state is not None, None
        if resume_state is not None:
            self._restore(resume_state)

    def _read_corpus(self, text, data_path, data_name, base_chars):
        """The text as ids: in memory, or memory-mapped from an id file prepared once beside the run (a dataset,
        or a --data file of MEMMAP_MIN_BYTES or more); the main process prepares it, the others then reuse it."""
        s = self.settings
        if text is not None:
            return encode_text(text, data_name or "the text", base_chars=base_chars)
        folder = self.out_dir / PREPARED_DIR
        if s.dataset:
            from .datasets_source import dataset_corpus

            with self.accelerator.main_process_first():
                return dataset_corpus(self.sources["dataset"], s.dataset_config, s.dataset_split or "train",
                                      s.text_column or "text", folder, base_chars)
        path = Path(data_path)
        if path.is_file() and path.stat().st_size >= data_module.MEMMAP_MIN_BYTES:
            with self.accelerator.main_process_first():
                return prepare_ids(lambda: iter_corpus(path), folder, file_source(path), path, base_chars)
        return encode_corpus(path, base_chars=base_chars)

    def _model_config(self, base_model, resume_state):
        """A new model's config from the settings; a fine-tune's from its base (grown vocabulary, this dropout)."""
        s = self.settings
        if base_model is None and resume_state is not None and resume_state.get("model_config"):
            base = TinyGPTConfig.from_dict(json.loads(resume_state["model_config"]))  # a resumed fine-tune
        elif base_model is not None:
            base = base_model.config
        else:
            return s.model_config(vocab_size=len(self.chars))
        from .finetune import grown_config

        return grown_config(base, len(self.chars), s.dropout)

    def _check_same_text(self, corpus, state, data_changed) -> dict:
        """A resumed run continues on the text it was trained on: the same characters always (the vocabulary),
        the same text unless `data_changed`, which trainer_state.json's "data" then records (returned: what to add
        to it). Checkpoints written before the fingerprint existed are checked by their characters only."""
        if state["chars"] != "".join(self.chars):
            raise TrainingError(
                f"--resume: {corpus.path} has a different set of characters ({len(self.chars)}) than the text the "
                f"model in {self.out_dir} was trained on ({len(state['chars'])}), so the vocabularies "
                "differ; resume with the original --data"
            )
        saved, before = state.get("data_fingerprint"), state.get("data") or {}
        if saved is None or saved == self.data_fingerprint:  # an earlier change stays on record
            return {key: before[key] for key in ("data_changed_at_step", "previous_data") if key in before}
        if not data_changed:
            then = before.get("characters")
            how = (f"{len(corpus):,} characters where that text had {then:,}" if then not in (None, len(corpus))
                   else "the same characters, but not the same text")
            raise TrainingError(
                f"--resume: {corpus.path} is not the text the model in {self.out_dir} was trained on ({how}); "
                "resume with the original --data, or pass --data-changed to continue training on this text "
                "(trainer_state.json records the change)"
            )
        return {"data_changed_at_step": state["step"], "previous_data": before}

    def _restore(self, state):
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") is not None and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(state["scaler"])
        if len(state["rng"]) == self.world:
            restore_rng(state["rng"][self.rank], self.device, self.sampler)
        else:  # a different number of processes: continue, but the batches cannot be the same as before
            self.sampler.manual_seed(self.settings.seed + self.rank + 1_000_003 * state["step"])
            torch.manual_seed(self.settings.seed + self.rank + 1_000_003 * state["step"])
            self.resume_note = (f"note: resuming with {self.world} process(es) where the run used "
                                f"{len(state['rng'])}: the weights and optimizer continue exactly, the random "
                                "batches from here on are new ones")
        self.step = self.saved_step = state["step"]
        run = RunState.from_dict({"log_history": list(state["log_history"]), "best_val_loss": state["best_val_loss"],
                                  "best_step": state.get("best_step")})
        self.state.log_history, self.state.best_val_loss, self.state.best_step = \
            run.log_history, run.best_val_loss, run.best_step
        self.state.warnings = [w for w in state.get("warnings", []) if w not in self.state.warnings] + \
            self.state.warnings
        if self.settings.keep == "best":
            if state.get("best_model") is not None:
                self.best_weights, self.best_weights_step = state["best_model"], state["best_model_step"]
            else:  # the best was the saved step itself, or the run kept its last weights until now
                self._keep_current_weights(state["step"])
        self.prior_elapsed = self.state.elapsed_s = state["elapsed_s"]

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
            self._emit("on_train_begin")
            while True:
                reason = "finished" if step >= s.max_iters else self._stop_reason(step)
                if reason:
                    break
                if step % s.eval_interval == 0 and not self._evaluated(step):
                    self.evaluate(step)
                    self.save(step)
                loss = self.train_step(step)
                self._unchecked_losses.append((step, loss.detach()))
                step = self.step = step + 1
                if len(self._unchecked_losses) >= FINITE_CHECK_EVERY:
                    self._check_finite()
                self._emit("on_step_end", step, loss, s.learning_rate_at(step - 1))
            self.state.status = reason  # recorded in the last checkpoint
            if not self._evaluated(step):  # the final model's losses and sample: a stopped one too, never older ones
                self.evaluate(step)
            if self.saved_step != step:
                self.save(step)
            self._emit("on_train_end", reason)
            return reason
        finally:
            self.close()

    def train_step(self, step: int) -> torch.Tensor:
        """One optimizer step of the seed's loop; returns the loss tensor (read it only when you must)."""
        s = self.settings
        for group in self.optimizer.param_groups:
            group["lr"] = s.learning_rate_at(step)
        x, y = get_batch(self.train_data, s.block_size, s.batch_size, self.sampler, self.device)
        loss = self._wrapped(x, shift_labels=y).loss  # the seed's F.cross_entropy over all B*T positions
        self.accelerator.backward(loss)
        if s.grad_clip:
            self.accelerator.clip_grad_norm_(self._wrapped.parameters(), s.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def stop(self) -> None:
        """Ask the run to finish its current step, save and end ("stopped"); safe from any thread."""
        self._stop.set()

    def elapsed(self) -> float:
        """Seconds of training so far, a resumed run's earlier ones included."""
        return self.prior_elapsed + time.perf_counter() - self.start_time

    def _stop_reason(self, step: int) -> str | None:
        """"stopped" (stop() was called), "time_limit", or None to go on."""
        limit = self.settings.max_seconds
        wanted = 1 if self._stop.is_set() else 2 if limit is not None and self.elapsed() >= limit else 0
        if self.world > 1:  # every process must stop at the same step; a collective every 10 steps
            if step % 10 and step % self.settings.eval_interval:
                return None
            wanted = int(self.accelerator.gather(torch.tensor([wanted], device=self.device)).max())
        return (None, "stopped", "time_limit")[wanted]

    def _check_finite(self) -> None:
        """Raise TrainingDiverged naming the first step whose training loss was NaN or infinite (on any process),
        from the losses kept since the last check: one device sync for all of them."""
        losses, self._unchecked_losses = self._unchecked_losses, []
        bad = None
        if losses:
            finite = torch.isfinite(torch.stack([loss for _, loss in losses]))
            if not bool(finite.all()):
                index = int((~finite).nonzero()[0])
                bad = (losses[index][0], losses[index][1].item())
        if self.world > 1:  # every process stops at the same check, naming the earliest bad step of any
            first = torch.tensor([bad[0] if bad else -1], device=self.device)
            steps = self.accelerator.gather(first)
            steps = steps[steps >= 0]
            if len(steps) and (bad is None or int(steps.min()) < bad[0]):
                bad = (int(steps.min()), float("nan"))
        if bad is not None:
            self._diverged(*bad)

    def _diverged(self, step: int, value: float) -> None:
        """Stop with the folder as it is: its last checkpoint is the last good model."""
        self.state.status = "diverged"
        raise TrainingDiverged(step, value, self.settings.learning_rate_at(step), self.out_dir, self.saved_step)

    def _evaluated(self, step: int) -> bool:
        return bool(self.log_history) and self.log_history[-1]["step"] == step

    def _emit(self, event: str, *args) -> None:
        if self.is_main:
            for callback in self.callbacks:
                getattr(callback, event)(self, *args)

    # ----------------------------------------------------------------------------------------------- evaluation

    def evaluate(self, step: int) -> dict:
        """Losses and a sample of the model as it is at `step`, recorded in the state (and announced); a
        non-finite loss (since the last check, or now) raises TrainingDiverged before anything is sampled."""
        self._check_finite()
        train_loss, val_loss = self.estimate_loss()
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):  # the last update broke the weights
            self._diverged(step, val_loss if not math.isfinite(val_loss) else train_loss)
        record = {"step": step, "train_loss": train_loss, "val_loss": val_loss,
                  "lr": self.settings.learning_rate_at(max(step - 1, 0)),  # the rate of the step that led here
                  "elapsed_s": round(self.elapsed(), 3)}
        record["sample"] = self.sample() if self.is_main else ""
        self.state.elapsed_s = record["elapsed_s"]
        if self.state.record_evaluation(record) and self.settings.keep == "best":
            self._keep_current_weights(step)
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
    def sample(self) -> str:
        """`sample_length` characters generated from a newline (else id 0) with the run's seed, inside `fork_rng`,
        so it never moves the training's random streams."""
        start = self.tokenizer.convert_tokens_to_ids("\n") if "\n" in self.chars else 0
        input_ids = torch.tensor([[start]], device=self.device)
        accelerated = self.device.type in ("cuda", "mps")
        self.model.eval()
        with torch.random.fork_rng(devices=[self.device.index or 0] if accelerated else [],
                                   device_type=self.device.type if accelerated else "cuda"):
            torch.manual_seed(self.settings.seed)
            with self.accelerator.autocast():
                out = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                          **generation_kwargs(self.sample_length, 1.0, 0, 1.0))
        self.model.train()
        return self.tokenizer.decode(out[0].tolist())

    # ----------------------------------------------------------------------------------------------- saving

    def save(self, step: int) -> None:
        """Checkpoint `step` into the output folder; every process takes part, the main one writes.

        Never a non-finite model (TrainingDiverged instead). The run's first save into a folder that holds an old
        model (--overwrite) builds the whole new folder aside and swaps it in (`replace_folder`); every other save
        replaces files one by one (`write_checkpoint`). A failed write raises CheckpointError: the folder keeps
        what it held."""
        self._check_finite()
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self._diverged(step, float("nan"))
        rng = [capture_rng(self.device, self.sampler)]
        from accelerate.utils import broadcast_object_list, gather_object

        rng = gather_object(rng) if self.world > 1 else rng
        error = None
        if self.is_main:
            def write_files(staging):
                self._write_files(staging, step, rng)

            try:
                if self._replace_old_model and holds_model(self.out_dir):  # else no model to swap: file by file
                    replace_folder(self.out_dir, write_files, carry=carried_over)
                else:
                    write_checkpoint(self.out_dir, write_files, first=self.saved_step is None)
            except CheckpointError as err:
                error = describe_save_error(self.out_dir, step, self.saved_step, err)
        error = broadcast_object_list([error])[0] if self.world > 1 else error
        if error:
            raise CheckpointError(error)
        self._replace_old_model = False
        self.saved_step = step
        self._emit("on_save", step, self.out_dir)

    def trainer_state(self, step: int) -> dict:
        """trainer_state.json of a checkpoint of `step` (the state's serialisation)."""
        self.state.global_step, self.state.elapsed_s = step, round(self.elapsed(), 3)
        self.state.model_step = self.best_weights_step if self.best_weights is not None else step
        return self.state.to_dict()

    def _write_files(self, staging: Path, step: int, rng: list[dict]) -> None:
        # The folder's model: the best-val weights (keep=best) or the latest; the resume state: always the latest.
        self.model.save_pretrained(staging, state_dict=self.best_weights)
        self.tokenizer.save_pretrained(staging)
        self.trainer_state(step)
        self.state.save(staging)
        if self.text is not None and self.saved_step is None:  # the text given in memory, for the command
            (staging / TEXT_FILE_NAME).write_text(self.text, encoding="utf-8")
        self._emit("on_checkpoint", step, staging)
        # torch.save of plain containers and tensors: `torch.load(weights_only=True)` reads it with no code run.
        keep_best = self.best_weights is not None and self.best_weights_step != step
        save_training_state(staging / TRAINING_STATE_NAME, {
            "step": step, "settings": self.settings.to_dict(),
            "data_path": str(self.data_path) if self.data_path else None, "data": self.data_info,
            "data_fingerprint": self.data_fingerprint, "chars": "".join(self.chars),
            "model_config": self.model.config.to_json_string() if self.settings.init_from else None,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler is not None else None,
            "rng": rng, "log_history": self.log_history, "best_val_loss": self.best_val_loss,
            "best_step": self.state.best_step, "warnings": self.state.warnings,
            "best_model": self.best_weights if keep_best else None,
            "best_model_step": self.best_weights_step if keep_best else None,
            "elapsed_s": self.elapsed(), "num_processes": self.world,
        })

    def _keep_current_weights(self, step: int) -> None:
        self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.best_weights_step = step

    def close(self) -> None:
        """Free the optimizer and the DDP wrapper, then the process group. Left to garbage collection, DDP's
        reducer can be the gloo group's last owner and join its threads holding the GIL: a deadlock at exit."""
        if self.optimizer is not None:
            self._wrapped, self.optimizer = self.accelerator.free_memory(self._wrapped, self.optimizer)
            self.model.eval()
            self.accelerator.end_training()


# ----------------------------------------------------------------------------------------------- learning or memorising

OVERFITTING = "Val loss is rising"


def repeats_warning(fraction: float) -> str:
    return (f"Memorising, not learning: {fraction:.0%} of the held-out text (the last 10 %) also appears in the "
            "training text, so a low val loss only shows the model repeating what it has already seen. Give a text "
            "that does not repeat itself to see what it really learns.")


def overfitting_warning(log_history: list[dict]) -> str | None:
    """A plain sentence when the val loss rose at each of the last two evaluations while the train loss fell:
    the model is learning the training text by heart (overfitting), and the best-val model is the one to use."""
    if len(log_history) < 3:
        return None
    a, b, c = log_history[-3:]
    if not (a["val_loss"] < b["val_loss"] < c["val_loss"] and a["train_loss"] > b["train_loss"] > c["train_loss"]):
        return None
    if c["val_loss"] - a["val_loss"] < 0.01:  # noise, not a trend
        return None
    best = min(log_history, key=lambda r: r["val_loss"])
    return (f"{OVERFITTING} while train loss falls (val {a['val_loss']:.3f} at step {a['step']} -> "
            f"{c['val_loss']:.3f} at step {c['step']}): the model is memorising its training text. The best model "
            f"was at step {best['step']} (val {best['val_loss']:.3f}).")
