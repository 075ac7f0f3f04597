"""Learning or memorising? The two plain-words warnings a learner reads in train.py's log, the Train tab and the
model card (the run state's `warnings`).

- Before training: the held-out text (the last 10 %) repeats the training text, so a low val loss would only show
  the model repeating what it has seen (a rhyme pasted 200 times). Measured by `data.val_repeats_train`.
- During training: the val loss rises at two evaluations in a row while the train loss falls (overfitting); the
  best-val model is then the one to use (`--keep best`).
"""

from __future__ import annotations

REPEATS_WARNING = 0.25  # warn when more than this share of the val passages occur in the training text
OVERFITTING = "Val loss is rising"  # how the overfitting warning starts: a newer one replaces an older one


def repeats_warning(fraction: float) -> str | None:
    """The memorising warning for a text whose val passages are this share repeats of its training part, if any."""
    if fraction <= REPEATS_WARNING:
        return None
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
