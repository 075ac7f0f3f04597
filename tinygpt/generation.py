"""Generation parameters, checked in one place: `tinygpt generate`, the demo's Generate tab and the training
engine's samples all go through `check_generation_params` and `generation_kwargs`, so a value is refused with the
same words everywhere (the demo shows the ValueError's message as its error)."""

from __future__ import annotations

import math

MAX_SEED = 2**32 - 1  # what torch.Generator.manual_seed accepts on every platform


def check_generation_params(max_new_tokens, temperature, top_k, top_p, seed=None, max_new_tokens_limit=None):
    """(max_new_tokens, temperature, top_k, top_p, seed) as int/float/int/float/int, or a one-line ValueError.

    temperature 0 means greedy, top_k 0 and top_p 1 mean off; `seed` None means "not given". Values are taken as
    numbers only when they are whole where they must be (2.0 is 2; 2.5 steps, "2" and True are refused), and NaN
    or infinity is refused everywhere. `max_new_tokens_limit`: a server's limit (more is refused, not cut).
    """
    max_new_tokens = _whole(max_new_tokens, "max_new_tokens")
    top_k = _whole(top_k, "top_k")
    temperature = _number(temperature, "temperature")
    top_p = _number(top_p, "top_p")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if max_new_tokens_limit is not None and max_new_tokens > max_new_tokens_limit:
        raise ValueError(f"max_new_tokens must be at most {max_new_tokens_limit} here, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")
    if seed is not None:
        seed = _whole(seed, "seed")
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    return max_new_tokens, temperature, top_k, top_p, seed


def generation_kwargs(max_new_tokens, temperature, top_k, top_p) -> dict:
    """generate() options for the usual knobs (checked by `check_generation_params`)."""
    max_new_tokens, temperature, top_k, top_p, _ = check_generation_params(max_new_tokens, temperature, top_k, top_p)
    if temperature == 0:
        return {"max_new_tokens": max_new_tokens, "do_sample": False}
    return {
        "max_new_tokens": max_new_tokens, "do_sample": True, "temperature": temperature,
        "top_k": top_k or None, "top_p": top_p,
    }


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def _whole(value, name: str) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return value
