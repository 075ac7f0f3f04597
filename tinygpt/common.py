"""Small pieces every front end shares (train.py, the `tinygpt` command, app.py): one rule or helper each.

Imports only the standard library, torch and transformers, so app.py can use it wherever the `tinygpt` folder sits
beside it (a Space made by `tinygpt space` uploads the folder with app.py), installed or not.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Callable

import torch
from transformers.generation.streamers import BaseStreamer

# huggingface_hub's rule for a repo id: `name` or `namespace/name`, letters, digits, '-', '_', '.', at most 96 long.
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


def one_line(err: BaseException) -> str:
    """The first line of an exception's message (or its type's name): what a user is shown, without a traceback."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) like every other error, not the usage block.
    Subcommands made with `add_subparsers().add_parser` are of this class too."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def quiet_libraries() -> None:
    """No progress bars or advice from transformers and huggingface_hub: a command's output is its own lines."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def code_fence(text: str) -> str:
    """A markdown code fence for `text`: three backticks, or more than the longest run of backticks inside it."""
    return "`" * max(3, 1 + max((len(run) for run in re.findall("`+", text)), default=0))


def is_local_path(name: str) -> bool:
    """Whether `name` means a folder on this machine rather than a Hub repo id.

    An existing path is local. So is anything that can only be a path: it starts with '.', '/' or '~', has a
    backslash, more than one '/', or characters a repo id cannot have. Everything else (`user/name`, and a bare
    `name` such as `gpt2`, which the Hub also accepts) is a repo id.
    """
    if Path(name).expanduser().exists():
        return True
    if name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1:
        return True
    return len(name) > 96 or not _REPO_ID.match(name) or ".." in name or "--" in name


class CharStreamer(BaseStreamer):
    """Hands each new character to `emit` the moment generate() picks it.

    transformers' TextStreamer and TextIteratorStreamer hold text back until a word is complete; a character
    model should show every character as it comes. `decode` turns a list of ids into text (a tokenizer's
    `decode`); generate() first hands over the prompt, which is skipped unless `skip_prompt=False`.
    """

    def __init__(self, decode: Callable[[list[int]], str], emit: Callable[[str], None],
                 on_end: Callable[[], None] | None = None, skip_prompt: bool = True):
        self.decode = decode
        self.emit = emit
        self.on_end = on_end
        self.skip_prompt = skip_prompt
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if self.skip_prompt and not self._prompt_seen:
            self._prompt_seen = True
            return
        self.emit(self.decode(value.reshape(-1).tolist()))

    def end(self) -> None:
        if self.on_end is not None:
            self.on_end()


__all__ = ["CharStreamer", "code_fence", "is_local_path", "one_line", "quiet_libraries"]
