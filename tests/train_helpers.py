"""Shared bits of the training tests: a tiny corpus, tiny-model flags, running train.py, reading its folder.

The fixtures built from them (`corpus`, `trained`) are in tests/conftest.py."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_PY = REPO / "train.py"

# A model of a few thousand parameters: every run takes a fraction of a second per hundred steps.
TINY = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8",
    "--batch-size", "4", "--eval-iters", "2", "--learning-rate", "0.01", "--threads", "1",
]
WORDS = "the quick brown fox jumps over a lazy dog and then runs far away from home to rest".split()


def write_corpus(path: Path, words: int = 600, seed: int = 0) -> Path:
    """A few kilobytes of lower-case words: 20-odd characters, easy to learn a little of in 100 steps."""
    rng = random.Random(seed)
    path.write_text(" ".join(rng.choice(WORDS) for _ in range(words)) + "\n", encoding="utf-8")
    return path


def child_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra)
    return env


def run_train(args, cwd, timeout=240, env=None, **popen) -> subprocess.CompletedProcess:
    """`python train.py ARGS` in a subprocess, stdin closed (nothing may wait for a prompt); `env` adds variables."""
    return subprocess.run(
        [sys.executable, str(TRAIN_PY), *map(str, args)], cwd=cwd, env=child_env(**(env or {})), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout, **popen,
    )


def train(capsys, *args) -> tuple[int, str, str]:
    """`train.py ARGS` in this process: (exit status, stdout, stderr), without what was printed before."""
    from tinygpt import training

    capsys.readouterr()
    code = training.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def start_train(args, cwd, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(TRAIN_PY), *map(str, args)], cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )


def trainer_state(out_dir: Path) -> dict:
    return json.loads((out_dir / "trainer_state.json").read_text(encoding="utf-8"))


def folder_digest(out_dir: Path) -> dict:
    """name -> sha256 of every file directly in the folder (the checkpoint), to prove nothing changed."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out_dir.iterdir()) if p.is_file()}


def without_elapsed(log_history: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "elapsed_s"} for entry in log_history]
