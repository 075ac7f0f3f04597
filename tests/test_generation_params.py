"""Generation parameters, checked in one place (tinygpt.generation) for `tinygpt generate`, the demo and the engine."""

import math

import pytest

from tinygpt.generation import MAX_SEED, check_generation_params, generation_kwargs


def test_usual_values_become_generate_options():
    assert generation_kwargs(5, 0, 0, 1.0) == {"max_new_tokens": 5, "do_sample": False}  # temperature 0: greedy
    assert generation_kwargs(5.0, 0.8, 20, 0.9) == {"max_new_tokens": 5, "do_sample": True, "temperature": 0.8,
                                                    "top_k": 20, "top_p": 0.9}
    assert generation_kwargs(5, 1, 0, 1)["top_k"] is None  # 0 = off
    assert check_generation_params(1000, 1, 0, 1, seed=MAX_SEED, max_new_tokens_limit=1000)[-1] == MAX_SEED


@pytest.mark.parametrize(("args", "message"), [
    ((0, 1.0, 0, 1.0), "max_new_tokens must be at least 1, got 0"),
    ((2.5, 1.0, 0, 1.0), "max_new_tokens must be a whole number, got 2.5"),
    ((True, 1.0, 0, 1.0), "max_new_tokens must be a whole number, got True"),
    ((5, -0.1, 0, 1.0), "temperature must be >= 0 (0 = greedy), got -0.1"),
    ((5, math.nan, 0, 1.0), "temperature must be a finite number, got nan"),
    ((5, math.inf, 0, 1.0), "temperature must be a finite number, got inf"),
    ((5, "hot", 0, 1.0), "temperature must be a number, got 'hot'"),
    ((5, 1.0, -1, 1.0), "top_k must be >= 0 (0 = off), got -1"),
    ((5, 1.0, 0, 0.0), "top_p must be in (0, 1] (1 = off), got 0.0"),
    ((5, 1.0, 0, math.nan), "top_p must be a finite number, got nan"),
])
def test_bad_values_are_one_clear_error(args, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        check_generation_params(*args)


def test_limits_refuse_rather_than_cut():
    with pytest.raises(ValueError, match="max_new_tokens must be at most 1000 here, got 1001"):
        check_generation_params(1001, 1.0, 0, 1.0, max_new_tokens_limit=1000)
    with pytest.raises(ValueError, match=f"seed must be between 0 and {MAX_SEED}, got -1"):
        check_generation_params(5, 1.0, 0, 1.0, seed=-1)
