"""Choosing where to run: `auto` picks the best accelerator present, an explicit choice that cannot work fails early."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` -> cuda, else mps, else cpu. `cuda`/`mps` without that hardware raise a ValueError saying so."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is visible to PyTorch here; use --device cpu (or auto)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: Apple's MPS backend is not available here; use --device cpu (or auto)")
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name}: unknown device; choose one of {', '.join(DEVICE_CHOICES)}")
    return torch.device(name)
