"""Will a training run fit in memory? Checked before anything is allocated, so a size that cannot fit is one line
naming the flag and the largest value that would, instead of a machine that swaps until it gives out or an
allocator's traceback.

The estimate is a plain one, in float32 bytes (mixed precision only lowers it), meant to refuse what surely
cannot fit rather than to promise what will:

- the parameters, counted from the dimensions (the seed's architecture: embeddings, blocks, head);
- what training adds to each parameter: its gradient and AdamW's two moments (3 more copies), and, with
  `keep="best"`, the copy of the best weights;
- one step's activations kept for the backward pass, per character of the batch: about 15 x n_embd per block
  (layer norms, q/k/v, the attention output, the 4x feed-forward) and the logits with their softmax and gradient
  (3 x vocab_size) at the head. sdpa's fused attention keeps no block_size x block_size matrix (the eager path,
  used only when attention weights are asked for, would: not counted);
- an evaluation batch (no gradients) is smaller than that unless --eval-batch-size is much larger than
  --batch-size: the larger of the two counts.

The memory there is: on CUDA the device's free memory (`torch.cuda.mem_get_info`); elsewhere the system's
available memory (psutil, else /proc/meminfo, else sysconf), lowered to a container's limit (cgroups) where one is
set, and shared by the processes of this machine (torchrun's LOCAL_WORLD_SIZE).
"""

from __future__ import annotations

import os
from pathlib import Path

FLOAT_BYTES = 4
# Activations kept for the backward pass, per character of the batch and per block, in floats.
ACTIVATIONS_PER_BLOCK = 15  # x n_embd
HEAD_COPIES = 3  # logits, their log-softmax and their gradient: x vocab_size per character
TRAINING_COPIES = 4  # weights + gradients + AdamW's exp_avg and exp_avg_sq
# Flags a user can change to make a run fit, in the order they are suggested when several are equally far off.
SIZE_FLAGS = ("n_layer", "n_embd", "block_size", "batch_size", "eval_batch_size")


class DoesNotFit(ValueError):
    """The run cannot fit in the memory there is; the message names the flag and the value that would."""


def parameter_count(n_layer: int, n_embd: int, block_size: int, vocab_size: int) -> int:
    """The seed architecture's parameters: token + position embeddings, n_layer blocks (attention q/k/v without
    bias, projection, 4x feed-forward, two layer norms), the final layer norm and the head (with bias)."""
    c = n_embd
    block = 3 * c * c + (c * c + c) + (4 * c * c + 4 * c) + (4 * c * c + c) + 2 * 2 * c
    return vocab_size * c + block_size * c + n_layer * block + 2 * c + (c * vocab_size + vocab_size)


def training_bytes(sizes: dict, vocab_size: int, keep_best: bool = False) -> int:
    """Bytes a training step needs at least: the parameters with their gradients and AdamW state, and the larger
    of one training step's and one evaluation batch's activations. `sizes`: SIZE_FLAGS' values.

    Measured on CPU (the growth of the peak RSS over 3 training steps, vocabulary 65; estimate / measured):
    4 x 256 wide, context 256, batch 32: 579 / 663 MB; 2 x 512, context 128, batch 64: 646 / 857 MB; 8 x 128,
    context 512, batch 16: 545 / 625 MB; the seed's 2 x 64 with batch 4096: 1.18 / 1.15 GB.
    """
    n_layer, n_embd, block_size = sizes["n_layer"], sizes["n_embd"], sizes["block_size"]
    params = parameter_count(n_layer, n_embd, block_size, vocab_size)
    per_character = n_layer * ACTIVATIONS_PER_BLOCK * n_embd + HEAD_COPIES * vocab_size + 2 * n_embd
    train = sizes["batch_size"] * block_size * per_character
    evaluation = (sizes["eval_batch_size"] or sizes["batch_size"]) * block_size * (4 * n_embd + 2 * vocab_size)
    return FLOAT_BYTES * (params * (TRAINING_COPIES + keep_best) + max(train, evaluation))


def available_bytes(device) -> tuple[int, str]:
    """(bytes this process may still use, how that was found), for `device` (a torch.device)."""
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return free, f"free on {torch.cuda.get_device_name(device)}"
    free = _system_available()
    limit = _container_limit()
    where = "available"
    if limit is not None and limit < free:
        free, where = limit, "left under this container's limit"
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    if processes > 1:
        free, where = free // processes, f"{where}, shared by {processes} processes"
    return free, where


def _system_available() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _container_limit() -> int | None:
    """What a cgroup memory limit leaves (limit - usage), or None where there is none (cgroup v2, then v1)."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 1 << 60:  # v1 says "no limit" with a huge number
            return None
        return max(0, int(limit) - usage)
    return None


def human(n: int) -> str:
    """1.2 GB, 340 MB, ... (powers of 1000; an estimate has no need of more)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n} B"
        n /= 1000
    raise AssertionError


def largest_fitting(sizes: dict, name: str, vocab_size: int, keep_best: bool, budget: int) -> int:
    """The largest value of `sizes[name]` (the others as they are) whose run fits in `budget` bytes; 0 if even 1
    does not fit. n_embd stays a multiple of n_head."""
    step = sizes["n_head"] if name == "n_embd" else 1

    def fits(value: int) -> bool:
        return training_bytes(dict(sizes, **{name: value * step}), vocab_size, keep_best) <= budget

    low, high = 0, max(1, (sizes[name] or sizes["batch_size"]) // step)
    while low < high:  # the largest value that fits, in [0, high]
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low * step


def check_fits(settings, device, vocab_size: int = 1, base: str | None = None) -> None:
    """Refuse (DoesNotFit) a run of `settings` that cannot fit in the memory of `device`, naming the size flag
    that is furthest off and the largest value of it that would fit. `vocab_size`: the vocabulary when known (1
    before the text is read: a lower bound, so nothing that fits is refused). `base`: the model a fine-tune
    starts from, whose dimensions the settings hold: then only the batch sizes are the user's to change."""
    sizes = {name: getattr(settings, name) for name in (*SIZE_FLAGS, "n_head")}
    keep_best = settings.keep == "best"
    needed = training_bytes(sizes, vocab_size, keep_best)
    budget, where = available_bytes(device)
    if needed <= budget:
        return
    flags = ("batch_size", "eval_batch_size") if base else SIZE_FLAGS
    offers = {name: largest_fitting(sizes, name, vocab_size, keep_best, budget) for name in flags
              if sizes[name] is not None}
    # The flag furthest off among those that can make it fit (a lower value of one that cannot would not help).
    name = max(offers, key=lambda n: (offers[n] > 0, sizes[n] / max(offers[n], 1), -flags.index(n)))
    flag = "--" + name.replace("_", "-")
    params = parameter_count(sizes["n_layer"], sizes["n_embd"], sizes["block_size"], vocab_size)
    fine_tune = f" (fine-tuning {base}, {params:,} parameters)" if base else ""
    need = (f"needs about {human(needed)} to train (weights, gradients, AdamW's state and one step's activations) "
            f"and {human(budget)} are {where}")
    if offers[name] >= 1:
        raise DoesNotFit(f"{flag} {sizes[name]}{fine_tune} does not fit in memory: the run {need}; at most {flag} "
                         f"{offers[name]} fits (the other sizes as they are)")
    smallest = sizes["n_head"] if name == "n_embd" else 1
    raise DoesNotFit(f"{f'--init-from {base} ({params:,} parameters)' if base else f'{flag} {sizes[name]}'} does "
                     f"not fit in memory: the run {need}, even with {flag} {smallest}; "
                     f"{'fine-tune a smaller model' if base else 'choose a smaller model'}")


def check_start_fits(settings, device, init_from: str | None = None) -> None:
    """`check_fits` at a run's start, before its text or any model is loaded: with the settings' dimensions, or
    those of the model `init_from` opens (its config only: a fine-tune's dimensions are its base model's)."""
    if not init_from:
        return check_fits(settings, device)
    import dataclasses

    from .finetune import base_config

    config = base_config(init_from)
    dims = {name: getattr(config, name) for name in ("n_layer", "n_head", "n_embd", "block_size")}
    check_fits(dataclasses.replace(settings, **dims), device, config.vocab_size, base=settings.init_from)
