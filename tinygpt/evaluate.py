"""`tinygpt evaluate MODEL TEXT`: a model's loss and bits per character on a held-out text.

The text is read in consecutive windows of `block_size` characters, exactly as training computes its val loss,
only over all of it instead of `eval_iters` random windows: inputs `text[i : i + block_size]` predict
`text[i + 1 : i + block_size + 1]` for i = 0, block_size, 2 * block_size, ..., so every character but the first
is predicted once, from the characters before it in its window (1 to block_size of them); the last few, which
do not fill a window, are predicted from the block_size characters before them. The loss is the mean
cross-entropy per predicted character in nats (the seed's and the model card's val loss); bits per character is
that loss / ln 2, the unit papers on character models report. lm-evaluation-harness's rolling log-likelihood reads
a text the same way after a start character, so its `bits_per_byte` on ASCII text is this number for "\n" + text.

`--split val` evaluates the last 10 % of the file (the seed's validation part), so a model's own training text
gives the number its card reports, computed over the whole part; `--split all` (the default) is for a text kept
out of training altogether.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .corpus import read_corpus
from .data import split_index
from .device import DEVICE_CHOICES, resolve_device
from .loading import load_pretrained
from .run_state import bits_per_character  # the card's conversion too

SPLITS = {"all": "the whole text", "val": "the last 10 %, the seed's validation part"}


@dataclass
class Evaluation:
    loss: float  # mean cross-entropy per predicted character, in nats
    characters: int  # characters predicted: all but the first
    windows: int  # forward passes of up to block_size characters

    @property
    def bits_per_character(self) -> float:
        return bits_per_character(self.loss)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


def held_out_part(text: str, split: str) -> str:
    """`text` itself for "all"; its last 10 % for "val", cut where training cuts it."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return text if split == "all" else text[split_index(len(text)):]


@torch.inference_mode()
def evaluate_ids(model, ids: torch.Tensor, batch_size: int = 256) -> Evaluation:
    """Loss over a 1-D tensor of ids, in consecutive block_size windows (see the module docstring)."""
    if ids.dim() != 1 or len(ids) < 2:
        raise ValueError(f"need at least 2 characters (one to read, one to predict), got {ids.numel()}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    block_size = model.config.block_size
    device = next(model.parameters()).device
    ids = ids.long()
    predicted = len(ids) - 1
    full = predicted // block_size  # windows of exactly block_size predictions; then one shorter one, if any
    inputs = ids[: full * block_size].view(full, block_size)  # (windows, T)
    targets = ids[1 : full * block_size + 1].view(full, block_size)  # (windows, T)
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, full, batch_size):
        total += _summed_loss(model, inputs[start : start + batch_size], targets[start : start + batch_size], device)
    rest = predicted - full * block_size
    if rest:  # the last few characters: predicted from the full window that ends the text, scored once
        window = ids[-(block_size + 1) :]
        total += _summed_loss(model, window[None, :-1], window[None, 1:], device, last=rest)
    windows = full + (rest > 0)
    return Evaluation(loss=total.item() / predicted, characters=predicted, windows=windows)


def _summed_loss(model, x: torch.Tensor, y: torch.Tensor, device, last: int | None = None) -> torch.Tensor:
    """Summed cross-entropy of predicting y from x, over all positions or only the `last` ones."""
    logits = model(input_ids=x.to(device)).logits  # (B, T, vocab)
    if last is not None:
        logits, y = logits[:, -last:], y[:, -last:]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), y.to(device).flatten(), reduction="sum")
    return loss.double().cpu()


def evaluate_text(model, tokenizer, text: str, batch_size: int = 256) -> Evaluation:
    """Loss of `model` on `text`; characters the tokenizer does not know raise a ValueError naming them."""
    ids = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
    return evaluate_ids(model, ids, batch_size=batch_size)


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a tinygpt folder or a Hub repo id (user/name)")
    parser.add_argument("text", metavar="TEXT", help="a UTF-8 text file the model was not trained on")
    parser.add_argument("--split", choices=list(SPLITS), default="all",
                        help="all: the whole file (default); val: its last 10 %%, the part train.py validates on, "
                        "to measure a model on its own training file")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per forward pass (default 256)")
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    parser.add_argument("--device", default="cpu", choices=DEVICE_CHOICES)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    parser.epilog = ("Loss is the mean cross-entropy per predicted character in nats, as in training; bits per "
                     "character = loss / ln 2. The text is read in consecutive block_size windows.")


def run(args) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    path = Path(args.text)
    text = held_out_part(read_corpus(path), args.split)  # missing, empty, not UTF-8: one line (CorpusError)
    where = f"{path} ({SPLITS[args.split]})" if args.split != "all" else str(path)
    if len(text) < 2:
        raise ValueError(f"{where}: {len(text)} character(s) is too short; evaluating needs at least 2 "
                         "(one to read, one to predict)")
    model, tokenizer = load_pretrained(args.model, revision=args.revision, device=resolve_device(args.device))
    unknown = tokenizer.unknown_characters(text)
    if unknown:
        from .tokenization import describe_unknown_characters

        raise ValueError(f"{where}: {describe_unknown_characters(unknown, tokenizer.get_vocab())}")
    result = evaluate_text(model, tokenizer, text, batch_size=args.batch_size)
    print(f"{args.model} on {where}: {_count(result.characters, 'character')} predicted in "
          f"{_count(result.windows, 'window')} of up to {model.config.block_size}")
    print(f"loss {result.loss:.4f} nats per character, {result.bits_per_character:.4f} bits per character "
          f"(perplexity {result.perplexity:.2f})")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
