"""What a training run announces, and how to listen: the base class of every subscriber (transformers'
`trainer_callback.py`).

A leaf module: the engine that sends these events and every subscriber (train.py's console, the card writer, the
Hub push, the trackers, the demo's Train tab) import it, and it imports none of them.
"""

from __future__ import annotations


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
    #                                             "elapsed_s", "sample"} ("sample" only where the run sampled:
    #                                             sample_interval); state.warnings may have grown
    def on_checkpoint(self, trainer, step, folder): ...  # add files to the checkpoint being written in `folder`
    def on_save(self, trainer, step, out_dir): ...  # a complete checkpoint of `step` is in out_dir
    def on_train_end(self, trainer, reason): ...  # reason == state.status: "finished" | "stopped" | "time_limit"
