"""`tinygpt export onnx MODEL [--out DIR]`: a model for runtimes other than PyTorch (see tinygpt.onnx_export).

Only argparse here: the exporter (torch.onnx, onnxscript, onnxruntime) is imported when the command runs.
"""

from __future__ import annotations

FORMATS = ("onnx",)


def add_arguments(parser) -> None:
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    onnx = formats.add_parser(
        "onnx", help="an ONNX decoder with the key/value cache (onnxruntime, onnxruntime-web, transformers.js)",
        description="Write DIR/onnx/model.onnx: an ONNX decoder with the key/value cache as inputs and outputs "
        "(Optimum's and transformers.js's layout), dynamic batch and length, checked against PyTorch's logits; "
        "with config.json, generation_config.json and the tokenizer files at DIR's root.",
    )
    onnx.add_argument("model", metavar="MODEL", help="a tinygpt folder or a Hub repo id (user/name)")
    onnx.add_argument("--out", metavar="DIR", default=None,
                      help="where to write (default: MODEL itself for a folder, which gets MODEL/onnx/model.onnx; "
                      "./NAME for a Hub repo user/NAME)")
    onnx.add_argument("--overwrite", action="store_true",
                      help="replace an existing DIR/onnx/model.onnx, or write into a --out folder that is not empty")
    onnx.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    onnx.epilog = ("Needs the onnx extra: pip install \"tinygpt[onnx]\". Run it with tinygpt.onnx_runtime.OnnxDecoder "
                   "(Python) or onnxruntime-web; past block_size the decoding loop runs the last block_size "
                   "characters again with an empty past, as generate() does.")


def run(args) -> int:
    import torch

    from .onnx_export import export_onnx

    torch.set_num_threads(1)  # a character model's matrices are too small to split; the export is the same
    result = export_onnx(args.model, args.out, overwrite=args.overwrite, revision=args.revision)
    print(f"Wrote {result.onnx_path} ({result.size_bytes / 1e6:.2f} MB) in {result.seconds:.1f} s; onnxruntime "
          f"matches PyTorch's logits within {result.max_abs_diff:.1e}")
    return 0
