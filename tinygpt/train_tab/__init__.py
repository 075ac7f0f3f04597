"""The demo's Train tab, server side, one room per concern:

    request.py   what a training request may be: the text, the model size, the time budget, the start (checks)
    line.py      the line of trainings waiting for a slot, and each one's place
    job.py       a training on tinygpt's engine, in its own thread, and the run state it reports
    view.py      what the page shows of a training: the progress line, the loss chart, the samples
    handlers.py  what Train, Stop, Download and Push do, on the page and through /train

app.py builds the components and wires them to `TrainTab`; gradio is needed, so `import tinygpt` never imports
this package.
"""

from .handlers import TrainOutputs, TrainTab, hub_login_available
from .line import TRAIN_CONCURRENCY
from .view import loss_help
from .request import (
    DEFAULT_SIZE, MODEL_SIZES, SCRATCH, SERVED, SIZE_HELP, TRAIN_MAX_BYTES, TRAIN_MAX_SECONDS, TRAIN_MIN_SECONDS,
    TRAIN_SECONDS, ServedModel,
)

__all__ = [
    "DEFAULT_SIZE", "MODEL_SIZES", "SCRATCH", "SERVED", "SIZE_HELP", "TRAIN_CONCURRENCY", "TRAIN_MAX_BYTES",
    "TRAIN_MAX_SECONDS", "TRAIN_MIN_SECONDS", "TRAIN_SECONDS", "ServedModel", "TrainOutputs", "TrainTab",
    "hub_login_available", "loss_help",
]
