"""The ONNX export of the bundled model: its size, how long `tinygpt export onnx` takes, and decoding speed on
onnxruntime against PyTorch's generate(), one thread each, measured side by side in one process.

    python benchmarks/onnx_decode.py                  # 3 exports, 7 interleaved decoding rounds (a few minutes)
    python benchmarks/onnx_decode.py --quick          # 1 export, 3 rounds
    python benchmarks/onnx_decode.py --clock wall     # wall time instead of the process's CPU time

Decoding: greedy characters from a one-character prompt (the first block_size - 1 with the key/value cache, the
rest past block_size, where each step runs the last block_size characters again, as the seed does), through
  - PyTorch: `model.generate(do_sample=False)` (tinygpt's dynamic cache, crop-and-rerun past block_size);
  - onnxruntime: `tinygpt.onnx_runtime.OnnxDecoder.generate` (the same loop on the exported graph);
  - onnxruntime, no cache: every step runs the whole window (at most block_size characters) with an empty past,
    the loop of a browser page that ignores the cache.
The three texts must be equal (checked). Cases run interleaved (A, B, C, A, B, C, ...), so a busy machine slows
them alike; each cell is the median over rounds, the ratio the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

MODEL = REPO / "checkpoints" / "tinyshakespeare"


def clock(kind: str):
    return time.process_time if kind == "cpu" else time.perf_counter


def no_cache_generate(decoder, ids: np.ndarray, n: int) -> np.ndarray:
    """Greedy, every step a full run of the last block_size characters with an empty past."""
    for _ in range(n):
        window = ids[:, -decoder.block_size:]
        logits, _ = decoder.forward(window)
        ids = np.concatenate([ids, logits[:, -1].argmax(-1)[:, None]], axis=1)
    return ids


def decode_table(model, decoder, prompt, n: int, what: str, rounds: int, now) -> None:
    """Greedy `n` characters from `prompt` by each case, interleaved over `rounds`; the texts must be equal."""

    def pytorch():
        with torch.inference_mode():
            return model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                  max_new_tokens=n).numpy()

    cases = {"PyTorch generate()": pytorch,
             "onnxruntime, cache + rerun": lambda: decoder.generate(prompt.numpy(), n),
             "onnxruntime, no cache": lambda: no_cache_generate(decoder, prompt.numpy(), n)}
    texts = {name: fn() for name, fn in cases.items()}  # warm-up, and the equality check
    for name, text in texts.items():
        if not np.array_equal(text, texts["PyTorch generate()"]):
            raise SystemExit(f"{name}: greedy text differs from PyTorch's generate()")
    seconds = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            begin = now()
            fn()
            seconds[name].append(now() - begin)
    base = seconds["PyTorch generate()"]
    print(f"\nGreedy decoding from a 1-character prompt, {what}; texts equal")
    print(f"  {'case':<30} {'chars/s (median)':>17} {'best':>8} {'vs PyTorch':>11}")
    for name, values in seconds.items():
        ratio = statistics.median(b / v for b, v in zip(base, values))
        print(f"  {name:<30} {n / statistics.median(values):>17,.0f} {n / min(values):>8,.0f} {ratio:>10.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 export, 3 decoding rounds")
    parser.add_argument("--exports", type=int, default=None, help="exports to time (default 3; --quick 1)")
    parser.add_argument("--rounds", type=int, default=None, help="decoding rounds (default 7; --quick 3)")
    parser.add_argument("--new-tokens", type=int, default=500, help="characters per decoding (default 500)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time (default) or wall")
    args = parser.parse_args(argv)
    exports = args.exports or (1 if args.quick else 3)
    rounds = args.rounds or (3 if args.quick else 7)
    torch.set_num_threads(1)
    now = clock(args.clock)

    from tinygpt.common import quiet_libraries
    from tinygpt.loading import load_pretrained
    from tinygpt.onnx_export import export_onnx
    from tinygpt.onnx_runtime import OnnxDecoder

    quiet_libraries()
    import onnxruntime
    import transformers

    print(f"tinygpt ONNX benchmark: {MODEL.relative_to(REPO)}, 1 thread, {args.clock} clock")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"load average {os.getloadavg()[0]:.2f} at start")

    with tempfile.TemporaryDirectory() as tmp:
        times, walls = [], []
        for i in range(exports):
            start_cpu, start_wall = now(), time.perf_counter()
            result = export_onnx(str(MODEL), Path(tmp) / f"export{i}")
            times.append(now() - start_cpu)
            walls.append(time.perf_counter() - start_wall)
        size = result.size_bytes
        params = sum(p.numel() for p in load_pretrained(str(MODEL))[0].parameters())
        print(f"\nExport: onnx/model.onnx {size:,} bytes ({size / 1e6:.2f} MB; {params:,} parameters = "
              f"{4 * params:,} bytes of fp32 weights), one file; onnxruntime vs PyTorch max |logit diff| "
              f"{result.max_abs_diff:.1e}")
        print(f"  time ({args.clock}): median {statistics.median(times):.1f} s over {exports} (wall median "
              f"{statistics.median(walls):.1f} s), the check against PyTorch included")

        model, _ = load_pretrained(str(MODEL))
        start = time.perf_counter()
        decoder = OnnxDecoder(result.out_dir, threads=1)
        session_s = time.perf_counter() - start
        prompt = torch.zeros((1, 1), dtype=torch.long)
        block = model.config.block_size
        print(f"onnxruntime session load {session_s * 1000:.0f} ms (wall)")
        for n, what in ((args.new_tokens, f"{args.new_tokens} characters: {block - 1} cached steps, then a rerun "
                         "of the window per step"),
                        (block - 1, f"{block - 1} characters, all within block_size: the cache's own regime")):
            decode_table(model, decoder, prompt, n, what, rounds, now)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
