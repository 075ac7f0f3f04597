"""`tinygpt export onnx`: a tinygpt model as an ONNX decoder with its key/value cache as inputs and outputs.

The layout is the one Optimum writes and transformers.js reads for a decoder-only model with past
(`DIR/onnx/model.onnx` beside the model's config.json, generation_config.json and tokenizer files):

    inputs   input_ids            int64   [batch_size, sequence_length]
             attention_mask       int64   [batch_size, past_sequence_length + sequence_length]
             position_ids         int64   [batch_size, sequence_length]
             past_key_values.{i}.key / .value   float32 [batch_size, n_head, past_sequence_length, head_dim]
    outputs  logits               float32 [batch_size, sequence_length, vocab_size]
             present.{i}.key / .value           float32 [batch_size, n_head, past_sequence_length
                                                                             + sequence_length, head_dim]

The graph is the model's own `forward` (the same attention function, mask and cache code), traced by the exporter
torch ships (`torch.onnx.export(..., dynamo=True)`, which needs onnxscript and onnx). Learned absolute positions
mean the cache is valid only while the text fits in `block_size`: past it the decoding loop runs the last
`block_size` characters again with an empty past, as `generate()` does (`tinygpt.onnx_runtime.OnnxDecoder`, and
/work/wt/ONNX_CONTRACT.md's loop for the browser). Every export is checked against PyTorch before it is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from .common import is_local_path
from .loading import load_pretrained, resolve_model_dir

ONNX_FILE = "onnx/model.onnx"
# Copied to the export folder's root, so that it is a repo transformers.js can open (config + tokenizer).
ROOT_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")
# What the export records in the ONNX file's metadata: the weights it was made from (so `tinygpt push` can tell a
# stale export from a current one) and the window the decoding loop slides.
WEIGHTS_SHA256_KEY = "tinygpt.weights_sha256"
BLOCK_SIZE_KEY = "tinygpt.block_size"
OPSET = 20  # torch 2.13's default; onnxruntime-web 1.2x runs every operator the graph uses
TOLERANCE = 1e-4  # the export is refused if onnxruntime's logits differ from PyTorch's by more
INSTALL_HINT = 'pip install "tinygpt[onnx]"'
# Example sizes the graph is traced with: every one >= 2 (torch.export fixes sizes 0 and 1 as constants) and all
# different (sizes that are equal while tracing could be taken for the same dimension).
TRACE_BATCH, TRACE_PAST, TRACE_NEW = 4, 3, 2
MIN_BLOCK_SIZE = TRACE_PAST + TRACE_NEW


class OnnxUnavailableError(ValueError):
    """onnx, onnxscript or onnxruntime is not installed (the `onnx` extra)."""


def require_onnx(*modules: str) -> None:
    """One clear line naming what is missing, before any work is done."""
    import importlib

    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise OnnxUnavailableError(
            f"ONNX export needs {', '.join(missing)}, which {verb} not installed: {INSTALL_HINT}")


def input_names(n_layer: int) -> list[str]:
    past = [f"past_key_values.{i}.{kind}" for i in range(n_layer) for kind in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past]


def output_names(n_layer: int) -> list[str]:
    return ["logits", *(f"present.{i}.{kind}" for i in range(n_layer) for kind in ("key", "value"))]


class KVCacheDecoder(nn.Module):
    """The model's forward with flat tensors in and out (what an ONNX graph has): the past keys and values become
    a transformers `DynamicCache`, the cache after the step becomes the `present` outputs. `past` is the list
    [layer 0's keys, layer 0's values, layer 1's keys, ...], each (batch, n_head, past length, head_dim)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, past):
        cache = DynamicCache(config=self.model.config)
        for i in range(len(past) // 2):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache=cache, use_cache=True)
        presents = [tensor for layer in out.cache.layers for tensor in (layer.keys, layer.values)]
        return (out.logits, *presents)


def example_inputs(config, batch: int, past: int, new: int, generator: torch.Generator | None = None):
    """Inputs of one decoding step: `new` ids after `past` cached ones (random keys and values), no padding."""
    head_dim = config.n_embd // config.n_head
    input_ids = torch.randint(0, config.vocab_size, (batch, new), generator=generator)
    attention_mask = torch.ones((batch, past + new), dtype=torch.long)
    position_ids = torch.arange(past, past + new).expand(batch, new).contiguous()
    cache = [torch.randn(batch, config.n_head, past, head_dim, generator=generator) for _ in range(2 * config.n_layer)]
    return input_ids, attention_mask, position_ids, cache


def export_decoder(model, path: str | Path) -> Path:
    """Write `model` (a TinyGPTForCausalLM) as an ONNX decoder with past to `path` (one file); returns the path."""
    require_onnx("onnxscript", "onnx")
    config = model.config
    if config.block_size < MIN_BLOCK_SIZE:
        raise ValueError(f"ONNX export needs block_size >= {MIN_BLOCK_SIZE} (the graph is traced with "
                         f"{TRACE_PAST} cached + {TRACE_NEW} new positions); this model has {config.block_size}")
    model = model.eval()
    n_layer = config.n_layer
    dynamic = torch.export.Dim.DYNAMIC  # named afterwards (`_name_dimensions`): the exporter numbers them s0, s1, ...
    past_shape = {0: dynamic, 2: dynamic}
    dynamic_shapes = ({0: dynamic, 1: dynamic}, {0: dynamic, 1: dynamic}, {0: dynamic, 1: dynamic},
                      [past_shape] * (2 * n_layer))
    inputs = example_inputs(config, TRACE_BATCH, TRACE_PAST, TRACE_NEW, torch.Generator().manual_seed(0))
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            KVCacheDecoder(model), inputs, dynamo=True, dynamic_shapes=dynamic_shapes, opset_version=OPSET,
            input_names=input_names(n_layer), output_names=output_names(n_layer), external_data=False,
            optimize=True, verbose=False,
        )
    _name_dimensions(program.model, n_layer)
    for node in program.model.graph.all_nodes():
        # the exporter records each node's Python stack trace and FX node: a third of the file, and the paths of
        # this machine's files in a file that gets published
        node.metadata_props.clear()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(path)  # one file; weights go to external data only past protobuf's 2 GB
    return path


def _name_dimensions(model_ir, n_layer: int) -> None:
    """Give the graph's dynamic dimensions the contract's names (the exporter calls them s0, s1, ... and does not
    know that every past tensor has the same length)."""
    from onnx_ir import Shape

    batch, new, past, total = "batch_size", "sequence_length", "past_sequence_length", \
        "past_sequence_length + sequence_length"
    graph = model_ir.graph
    names = {}  # the exporter's symbol -> the contract's name

    def rename(value, dims):
        for old, new_name in zip(value.shape, dims):
            if isinstance(new_name, str) and not isinstance(old, int) and old.value:
                names.setdefault(old.value, new_name)
        value.shape = Shape(dims)

    inputs = {value.name: value for value in graph.inputs}
    for name in ("input_ids", "position_ids"):
        rename(inputs[name], [batch, new])
    rename(inputs["attention_mask"], [batch, total])
    for value in graph.inputs[3:]:
        rename(value, [batch, value.shape[1], past, value.shape[3]])
    for value in graph.outputs:
        rename(value, [batch, new, value.shape[2]] if value.name == "logits"
               else [batch, value.shape[1], total, value.shape[3]])
    # intermediate values: the same symbols, renamed where they are plain (expressions keep the exporter's names)
    for node in graph.all_nodes():
        for value in node.outputs:
            if value.shape is not None and value not in graph.outputs:
                value.shape = Shape([names.get(d.value, d.value) if not isinstance(d, int) and d.value in names
                                     else d for d in value.shape])


class _quiet_exporter:
    """The exporter logs a warning for every torchvision operator it cannot register and warns about pytree
    internals: noise for a user, who gets one line per export from `tinygpt export onnx` instead."""

    def __enter__(self):
        self.logger = logging.getLogger("torch.onnx")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        self.warnings.__exit__(*exc)
        self.logger.setLevel(self.level)
        return False


def weights_sha256(model_dir: Path) -> str:
    digest = hashlib.sha256()
    with open(model_dir / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(onnx_path: Path) -> dict[str, str]:
    """The ONNX file's metadata_props (what `export_decoder`'s caller recorded), without loading the weights."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def _write_metadata(onnx_path: Path, metadata: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(onnx_path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(onnx_path))


def check_against_pytorch(model, onnx_path: Path, tolerance: float = TOLERANCE, name: str | None = None) -> float:
    """onnxruntime's logits against PyTorch's on a prefill then a step with the cache, batch 2; returns the largest
    difference, raises if it is over `tolerance` (an export that computes something else is never kept)."""
    from .onnx_runtime import OnnxDecoder

    config = model.config
    decoder = OnnxDecoder.from_file(onnx_path, config.to_dict(), threads=1)
    generator = torch.Generator().manual_seed(1)
    prompt = min(config.block_size - 1, 7)
    ids = torch.randint(0, config.vocab_size, (2, prompt + 1), generator=generator)
    with torch.no_grad():
        expected = model(ids, use_cache=False).logits.numpy()
    logits, past = decoder.forward(ids[:, :prompt].numpy())
    step, _ = decoder.forward(ids[:, prompt:].numpy(), past=past)
    import numpy as np

    worst = max(float(np.abs(logits - expected[:, :prompt]).max()), float(np.abs(step - expected[:, prompt:]).max()))
    if not worst <= tolerance:  # (also catches NaN)
        raise ValueError(f"{name or onnx_path}: onnxruntime's logits differ from PyTorch's by {worst:.2e} (more than "
                         f"{tolerance:g}); the export was not kept")
    return worst


@dataclass
class ExportResult:
    out_dir: Path
    onnx_path: Path
    size_bytes: int
    seconds: float
    max_abs_diff: float  # onnxruntime vs PyTorch on the check (see check_against_pytorch)


def default_out_dir(name_or_path: str) -> Path:
    """A local folder: the folder itself (the export adds MODEL/onnx/model.onnx); a Hub id: ./NAME."""
    if is_local_path(name_or_path):
        return Path(name_or_path).expanduser()
    return Path(name_or_path.rstrip("/").split("/")[-1])


def export_onnx(name_or_path: str, out_dir: str | Path | None = None, overwrite: bool = False,
                revision: str | None = None) -> ExportResult:
    """Export a tinygpt folder or Hub repo to `out_dir/onnx/model.onnx` (see `default_out_dir`), with the
    model's config and tokenizer files at `out_dir`'s root, after checking it against PyTorch.

    Nothing the user made is replaced: an existing `onnx/model.onnx` needs `overwrite`, and so does an
    `out_dir` (other than the model folder) that is not empty. The file is written to a temporary name first.
    """
    require_onnx("onnxscript", "onnx", "onnxruntime")
    start = time.perf_counter()
    out_dir = Path(out_dir).expanduser() if out_dir is not None else default_out_dir(str(name_or_path))
    model_dir = resolve_model_dir(str(name_or_path), revision)
    same = out_dir.exists() and model_dir.exists() and out_dir.resolve() == model_dir.resolve()
    target = out_dir / ONNX_FILE
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: is a file; give a folder")
    if not overwrite:
        if target.exists():
            raise ValueError(f"{target} already exists; pass --overwrite to replace it")
        if not same and out_dir.is_dir() and any(out_dir.iterdir()):
            raise ValueError(f"--out {out_dir}: the folder is not empty; give a new or empty folder, or pass "
                             "--overwrite to write into it")
    created = out_dir if not out_dir.exists() else target.parent if not target.parent.exists() else None
    try:
        diff = export_folder(model_dir, target)
    except BaseException:  # a failed export leaves no folder behind that it made (export_folder removed its file)
        if created is not None and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created, ignore_errors=True)
        raise
    if not same:
        for name in ROOT_FILES:
            if (model_dir / name).is_file():
                shutil.copyfile(model_dir / name, out_dir / name)
    return ExportResult(out_dir=out_dir, onnx_path=target, size_bytes=target.stat().st_size,
                        seconds=time.perf_counter() - start, max_abs_diff=diff)


def export_folder(model_dir: Path, target: Path) -> float:
    """The model in `model_dir` as `target` (an .onnx path), recording the weights' hash, checked against PyTorch;
    returns onnxruntime's largest difference from PyTorch. Written under a temporary name, renamed when checked."""
    model, _ = load_pretrained(str(model_dir))  # the same checks as every other command (weights, tokenizer)
    partial = target.with_name(target.name + ".partial")
    try:
        export_decoder(model, partial)
        _write_metadata(partial, {WEIGHTS_SHA256_KEY: weights_sha256(Path(model_dir)),
                                  BLOCK_SIZE_KEY: str(model.config.block_size)})
        diff = check_against_pytorch(model, partial, name=str(target))
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return diff


def check_exportable(model_dir: Path) -> None:
    """What `export_folder` would refuse, found without exporting (`tinygpt push --onnx` asks before any request)."""
    require_onnx("onnxscript", "onnx", "onnxruntime")
    block_size = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")).get("block_size", 0)
    if block_size < MIN_BLOCK_SIZE:
        raise ValueError(f"ONNX export needs block_size >= {MIN_BLOCK_SIZE}; {model_dir} has {block_size}")


def is_current_export(model_dir: Path) -> bool | None:
    """Whether `model_dir/onnx/model.onnx` was exported from `model_dir/model.safetensors` (None: no export).
    Raises ImportError where the onnx package, which reads the file's metadata, is missing."""
    path = Path(model_dir) / ONNX_FILE
    if not path.is_file():
        return None
    import onnx  # noqa: F401 (missing: the caller says the export could not be checked)

    try:
        recorded = read_metadata(path).get(WEIGHTS_SHA256_KEY)
    except Exception:  # noqa: BLE001 (not an ONNX file, or a truncated one: not a current export either way)
        return False
    return recorded == weights_sha256(Path(model_dir))


__all__ = ["ExportResult", "KVCacheDecoder", "check_exportable", "export_decoder", "export_folder", "export_onnx",
           "is_current_export",
           "OnnxUnavailableError", "ONNX_FILE"]
