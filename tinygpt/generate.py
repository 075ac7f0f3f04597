"""`tinygpt generate MODEL`: stream text from a model to the terminal, one character at a time."""

from __future__ import annotations

import sys

import torch

from .common import CharStreamer, one_line
from .device import DEVICE_CHOICES, resolve_device
from .generation import MAX_SEED, generation_kwargs  # the parameters' checks, shared with the demo and the engine
from .loading import load_pretrained


def compile_decoding(model, max_new_tokens: int) -> float:
    """Decode with a static cache and a `torch.compile`d step from now on; returns the seconds spent compiling.

    The prompt still runs eagerly; each new character then costs one compiled step (about 2x GPT2LMHeadModel on a
    laptop CPU at 4 layers x 128, see benchmarks/README.md). Compiling takes seconds to a minute, so it pays off
    for a server that generates all day (`app.py --compile`), not for one `tinygpt generate` call.
    """
    import time

    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, mode="default")  # "reduce-overhead" would mean CUDA graphs
    config._compile_all_devices = True  # transformers otherwise compiles decode steps only on GPUs
    model.generation_config.cache_implementation = "static"
    model.generation_config.compile_config = config
    device = next(model.parameters()).device
    start = time.perf_counter()
    with torch.inference_mode():  # compile now: one prompt within block_size, one past it, the longest output
        for length in (1, model.config.block_size + 1):
            ids = torch.zeros((1, length), dtype=torch.long, device=device)
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=True)
    return time.perf_counter() - start


def encode_prompt(tokenizer, prompt: str, device) -> torch.Tensor:
    """The prompt's ids; an empty prompt starts from id 0, like the seed's `torch.zeros((1, 1))`."""
    if prompt == "":
        return torch.zeros((1, 1), dtype=torch.long, device=device)
    return tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)  # CharTokenizer names unknown characters


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a tinygpt folder or a Hub repo id (user/name)")
    parser.add_argument("--prompt", default="", help="text to continue (default: start from the first character)")
    parser.add_argument("--max-new-tokens", type=int, default=500, help="characters to generate (default 500)")
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy; higher = more adventurous")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest characters (0 = off)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold (1 = off)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable samples")
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    parser.add_argument("--device", default="cpu", choices=DEVICE_CHOICES)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="CPU threads (default 1: a character model's matrices are too small to split, and one thread is "
        "faster; more can help a large model past block_size)",
    )


def run(args) -> int:
    kwargs = generation_kwargs(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:  # before torch's "Overflow when unpacking long"
        raise ValueError(f"--seed must be between 0 and {MAX_SEED}, got {args.seed}")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, tokenizer = load_pretrained(args.model, revision=args.revision, device=device)
    input_ids = encode_prompt(tokenizer, args.prompt, device)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    sys.stdout.write(args.prompt)
    streamer = CharStreamer(tokenizer.decode, emit=write, on_end=lambda: write("\n"))
    try:
        with torch.inference_mode():
            model.generate(input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer, **kwargs)
    except ValueError as err:  # e.g. an option generate() refuses: its first line, not a paragraph
        raise ValueError(one_line(err)) from err
    return 0


def write(text: str) -> None:
    """Each character reaches the terminal as soon as it is sampled."""
    sys.stdout.write(text)
    sys.stdout.flush()
