"""loss.png: train and validation loss against step, drawn without pyplot (no GUI backend, no global state)."""

from __future__ import annotations

from pathlib import Path


def plot_losses(log_history: list[dict], path: str | Path, title: str | None = None) -> None:
    """Write a PNG of `log_history`'s train_loss and val_loss against step."""
    from matplotlib.figure import Figure

    steps = [entry["step"] for entry in log_history]
    fig = Figure(figsize=(6.4, 4.0))
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.12, top=0.92)  # fixed margins: no layout pass
    ax = fig.add_subplot()
    ax.plot(steps, [entry["train_loss"] for entry in log_history], marker=".", label="train")
    ax.plot(steps, [entry["val_loss"] for entry in log_history], marker=".", label="val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (cross-entropy per character)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, format="png")
