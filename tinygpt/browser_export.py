"""The sliding window's step as its own small ONNX graph, for Generate in the visitor's browser.

    python -m tinygpt.browser_export MODEL OUT_DIR [--decoder]

Past `block_size` every step of the seed's decoding runs the last `block_size` characters again, at positions
0..block_size-1, with no cache (learned absolute positions: no cached key stays valid when the window slides), and
reads only the last position's logits. That step is most of any text, and the export `tinygpt export onnx` writes
(tinygpt.onnx_export: the key/value cache in and out, dynamic batch and length, logits at every position) runs it
with machinery it does not need there: the empty cache's inputs and outputs, the mask arithmetic, every position
through the last block and the head. This graph is the model's own forward for exactly that step, traced with
fixed shapes, `use_cache=False` and `logits_to_keep=1` (so the last block computes only the last position, as in
`generate()`):

    input   input_ids  int64    [1, block_size]   the window: the last block_size ids of the text
    output  logits     float32  [1, vocab_size]   the last position's

In onnxruntime-web a step then costs about two thirds of the general graph's (benchmarks/README.md). It records the
sha256 of the weights it was made from, as `tinygpt export onnx` does, and is checked against PyTorch before it is
kept. `--decoder` also writes `OUT_DIR/onnx/model.onnx` with `tinygpt export onnx` (for a model that has none): the
demo's server runs this module in a process of its own (tinygpt.browser_generate), once per model, into its cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

WINDOW_FILE = "window.onnx"
TOLERANCE = 1e-4  # as tinygpt.onnx_export: a graph whose logits differ from PyTorch's by more is not kept


class WindowStep(torch.nn.Module):
    """The model's forward on one window, keeping only the last position's logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False, logits_to_keep=1).logits[:, -1, :]


def export_window(model, path: Path, weights_sha256: str) -> float:
    """Write the window's step of `model` to `path` (checked against PyTorch first; written under a temporary name
    and renamed); returns onnxruntime's largest difference from PyTorch's logits."""
    import numpy as np
    import onnxruntime

    from .onnx_export import OPSET, WEIGHTS_SHA256_KEY, _quiet_exporter, require_onnx

    require_onnx("onnxscript", "onnx", "onnxruntime")
    config = model.config
    window = torch.randint(0, config.vocab_size, (1, config.block_size), generator=torch.Generator().manual_seed(0))
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(WindowStep(model.eval()), (window,), dynamo=True, opset_version=OPSET,
                                    input_names=["input_ids"], output_names=["logits"], external_data=False,
                                    optimize=True, verbose=False)
        expected = model(window, use_cache=False).logits[:, -1, :].numpy()
    for node in program.model.graph.all_nodes():
        node.metadata_props.clear()  # the exporter's stack traces: size, and this machine's paths
    program.model.metadata_props[WEIGHTS_SHA256_KEY] = weights_sha256
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        program.save(partial)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(partial), options, providers=["CPUExecutionProvider"])
        worst = float(np.abs(session.run(None, {"input_ids": window.numpy()})[0] - expected).max())
        if not worst <= TOLERANCE:  # (NaN too)
            raise ValueError(f"{path}: onnxruntime's logits differ from PyTorch's by {worst:.2e}; not kept")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinygpt.browser_export", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a tinygpt folder or Hub repo id")
    parser.add_argument("out_dir", help="writes OUT_DIR/window.onnx (and OUT_DIR/onnx/model.onnx with --decoder)")
    parser.add_argument("--decoder", action="store_true", help="also `tinygpt export onnx MODEL --out OUT_DIR`")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a character model's matrices are too small to split
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from .common import one_line
    from .loading import load_pretrained, resolve_model_dir
    from .onnx_export import export_onnx, weights_sha256

    try:
        out_dir = Path(args.out_dir)
        if args.decoder:
            export_onnx(args.model, out_dir, overwrite=True)
        model_dir = resolve_model_dir(args.model)
        model, _ = load_pretrained(str(model_dir))
        export_window(model, out_dir / WINDOW_FILE, weights_sha256(model_dir))
    except (ValueError, OSError) as err:
        print(f"tinygpt browser export: error: {one_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
