"""Turn a `state_dict` saved from the blog series' `GPT` into a tinygpt folder with the same logits.

    torch.save(model.state_dict(), "seed.pt")          # in the series' notebook
    tinygpt convert-seed seed.pt --data input.txt --out my-model

The seed keeps one `Head` module per attention head, each with its own key/query/value matrices; tinygpt stacks
them into one `qkv` matrix (see `MultiHeadAttention`). Every size is read off the tensors.
"""

from __future__ import annotations

import codecs
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .checkpoint import (
    CheckpointError, carried_over, clean_leftovers, describe_write_error, holds_model, replace_folder,
)
from .common import one_line
from .configuration_tinygpt import TinyGPTConfig
from .corpus import CorpusError, check_text_file, read_corpus
from .data import PREPARED_DIR
from .modeling_tinygpt import TinyGPTForCausalLM
from .output_folder import folder_name, is_tinygpt_trainer_state
from .tokenization import char_tokenizer

# Other names for the same modules, used by many readers' copies of the series (Karpathy's lecture code).
ALIASES = {
    "token_embedding_table.": "token_embedding.",
    "position_embedding_table.": "position_embedding.",
    "lm_head.": "head.",
}
# What a conversion writes: the model (save_pretrained) and its tokenizer.
CONVERTED_FILES = ("config.json", "generation_config.json", "model.safetensors", "configuration_tinygpt.py",
                   "modeling_tinygpt.py", "tokenization_tinygpt.py", "tokenizer.json", "tokenizer_config.json")
# Prefixes added by wrappers rather than by the model: torch.compile and DistributedDataParallel.
WRAPPER_PREFIXES = ("_orig_mod.", "module.")


class SeedConversionError(ValueError):
    """The file is not a state_dict of the series' GPT, or does not fit the corpus."""


# What `torch.save` writes: a zip archive (torch >= 1.6) holding `<name>/data.pkl`, or, from older torch or
# `_use_new_zipfile_serialization=False`, a pickle that starts with torch's own magic number.
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
EXPECTED = "convert-seed expects the file written by torch.save(model.state_dict(), 'seed.pt')"


def load_seed_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a seed checkpoint safely and normalise its key names.

    The file is first recognised by its bytes (`check_torch_file`), so a text file, random bytes or a damaged
    archive gets a sentence, not a traceback; only then does torch read it, with `weights_only=True`, which
    loads tensors and plain containers and refuses any other pickled object.
    """
    path = Path(path)
    check_torch_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise SeedConversionError(
            f"{path}: torch.load(weights_only=True) refused it: the file holds pickled Python objects (a whole "
            "model?), not just tensors. tinygpt never unpickles those, since unpickling can run arbitrary code. "
            "Save the weights only: torch.save(model.state_dict(), 'seed.pt')"
        ) from None
    except Exception as err:  # a damaged archive member: torch's reader raises RuntimeError, EOFError, KeyError...
        raise SeedConversionError(f"{path}: not a readable PyTorch checkpoint ({one_line(err)}); {EXPECTED}") from None
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
        obj = next(iter(obj.values()))  # {"model": state_dict} and similar wrappers
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SeedConversionError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    return {_canonical_key(k): v for k, v in obj.items()}


def check_torch_file(path: Path) -> None:
    """Raise a one-line `SeedConversionError` unless `path` looks like a `torch.save` file. Reads bytes only."""
    try:
        check_text_file(path, "the checkpoint file")
    except CorpusError as err:
        if path.is_dir():
            raise SeedConversionError(f"{path}: is a folder, not a checkpoint file; {EXPECTED}") from None
        raise SeedConversionError(str(err)) from None
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise SeedConversionError(f"{path}: is empty (0 bytes), not a PyTorch checkpoint; {EXPECTED}")
    if head.startswith(LEGACY_TORCH_MAGIC):
        return
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            raise SeedConversionError(
                f"{path}: is a truncated or damaged zip archive ({size:,} bytes), not a readable PyTorch checkpoint; "
                "copy or save it again"
            ) from None
        if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            raise SeedConversionError(f"{path}: is a zip archive without data.pkl, not a PyTorch checkpoint; {EXPECTED}")
        return
    raise SeedConversionError(f"{path}: not a PyTorch checkpoint: it is {_describe_bytes(head, size)}; {EXPECTED}")


def _describe_bytes(head: bytes, size: int) -> str:
    """What a file that is not a torch.save file seems to be, from its first bytes."""
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "a safetensors file (weights already converted? a tinygpt folder loads with from_pretrained)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a plain pickle, which tinygpt never unpickles (unpickling can run arbitrary code)"
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at 4096 bytes is fine
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return f"a {size:,}-byte text file" + (f" starting {first!r}" if first else "")
    return f"{size:,} bytes of binary data starting {head[:8].hex(' ')}"


def _canonical_key(key: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    for old, new in ALIASES.items():
        if key.startswith(old):
            key = new + key[len(old) :]
    return key


def infer_config(state: dict[str, torch.Tensor], **overrides) -> TinyGPTConfig:
    """Model sizes from tensor shapes: vocab and width from the token embedding, context from the positions."""
    for key in ("token_embedding.weight", "position_embedding.weight"):
        if key not in state:
            raise SeedConversionError(_key_report(state, missing=[key]))
        if state[key].dim() != 2:
            raise SeedConversionError(f"tensor {key} has shape {tuple(state[key].shape)}, expected 2 dimensions "
                                      "(rows, n_embd)")
    if state["position_embedding.weight"].shape[1] != state["token_embedding.weight"].shape[1]:
        raise SeedConversionError(
            f"tensor position_embedding.weight has shape {tuple(state['position_embedding.weight'].shape)}, "
            f"expected (block_size, {state['token_embedding.weight'].shape[1]}): the token embedding's width")
    vocab_size, n_embd = state["token_embedding.weight"].shape
    block_size = state["position_embedding.weight"].shape[0]
    layers = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    heads = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.0\.sa\.heads\.(\d+)\.", k))}
    if not layers or not heads:
        raise SeedConversionError(_key_report(state, missing=["blocks.0.sa.heads.0.key.weight"]))
    return TinyGPTConfig(
        vocab_size=vocab_size, n_embd=n_embd, n_head=len(heads), n_layer=len(layers), block_size=block_size,
        **overrides,
    )


def seed_to_tinygpt_state_dict(state: dict[str, torch.Tensor], config: TinyGPTConfig) -> dict[str, torch.Tensor]:
    """Rename the seed's tensors to tinygpt's, stacking each block's per-head key/query/value into `qkv`."""
    shapes = _expected_seed_shapes(config)
    missing = sorted(shapes.keys() - state.keys())
    # The causal-mask buffers (`tril`) carry no learned weights; tinygpt computes the mask.
    unexpected = sorted(k for k in state.keys() - shapes.keys() if not re.fullmatch(r"blocks\.\d+\.sa\.heads\.\d+\.tril", k))
    if missing or unexpected:
        raise SeedConversionError(_key_report(state, missing, unexpected))
    for key, shape in shapes.items():  # before any tensor is stacked: torch.cat's error names none of them
        if tuple(state[key].shape) != shape:
            raise SeedConversionError(
                f"tensor {key} has shape {tuple(state[key].shape)}, expected {shape} for the model the other "
                f"tensors describe (n_layer={config.n_layer}, n_head={config.n_head}, n_embd={config.n_embd}, "
                f"block_size={config.block_size}, vocab_size={config.vocab_size})")

    out = {}
    for key, tensor in state.items():
        if ".sa.heads." not in key:
            out[key] = tensor
    for layer in range(config.n_layer):
        heads = [f"blocks.{layer}.sa.heads.{h}" for h in range(config.n_head)]
        out[f"blocks.{layer}.sa.qkv.weight"] = torch.cat(
            [state[f"{head}.{part}.weight"] for part in ("query", "key", "value") for head in heads], dim=0
        )
    return out


def _expected_seed_shapes(config: TinyGPTConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of the series' GPT of these sizes, with its shape (nn.Linear's weight is (out, in))."""
    V, C, T = config.vocab_size, config.n_embd, config.block_size
    hs = C // config.n_head
    shapes = {"token_embedding.weight": (V, C), "position_embedding.weight": (T, C), "ln_f.weight": (C,),
              "ln_f.bias": (C,), "head.weight": (V, C), "head.bias": (V,)}
    for layer in range(config.n_layer):
        block = f"blocks.{layer}"
        shapes.update({f"{block}.{m}.{p}": (C,) for m in ("ln1", "ln2") for p in ("weight", "bias")})
        shapes.update({f"{block}.sa.proj.weight": (C, C), f"{block}.sa.proj.bias": (C,),
                       f"{block}.ffwd.net.0.weight": (4 * C, C), f"{block}.ffwd.net.0.bias": (4 * C,),
                       f"{block}.ffwd.net.2.weight": (C, 4 * C), f"{block}.ffwd.net.2.bias": (C,)})
        shapes.update({f"{block}.sa.heads.{h}.{m}.weight": (hs, C) for h in range(config.n_head)
                       for m in ("key", "query", "value")})
    return shapes


def _key_report(state, missing=(), unexpected=()) -> str:
    def show(keys):
        keys = list(keys)
        return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")

    parts = ["this is not a state_dict of the blog series' GPT"]
    if missing:
        parts.append(f"missing keys: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {show(unexpected)}")
    parts.append(f"it has: {show(sorted(state))}")
    return "; ".join(parts)


def convert_seed(state_dict_path, corpus_path, out_dir, attn_scale: str = "n_embd", dropout: float = 0.0,
                 overwrite: bool = False):
    """Write a tinygpt folder (model + tokenizer) for a seed checkpoint and the corpus it was trained on.

    A non-empty `out_dir` is refused unless `overwrite`; then the folder is replaced in one move
    (`checkpoint.replace_folder`): nothing of the model that was there before (its card, trainer_state.json,
    resume state) survives, and every other file in it (the user's own) is carried over (`kept_by_overwrite`).
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite, inputs=(state_dict_path, corpus_path))
    state = load_seed_state_dict(state_dict_path)
    config = infer_config(state, attn_scale=attn_scale, dropout=dropout)
    text = read_corpus(corpus_path)
    tokenizer = char_tokenizer(text)
    if len(tokenizer) != config.vocab_size:
        raise SeedConversionError(
            f"{corpus_path} has {len(tokenizer)} distinct characters but the checkpoint's vocabulary has "
            f"{config.vocab_size}: give the exact text the model was trained on (ids are its sorted characters)"
        )
    weights = seed_to_tinygpt_state_dict(state, config)
    model = TinyGPTForCausalLM(config)
    for key, tensor in weights.items():
        expected = model.state_dict()[key].shape
        if tensor.shape != expected:
            raise SeedConversionError(f"tensor {key} has shape {tuple(tensor.shape)}, expected {tuple(expected)}")
    model.load_state_dict(weights, strict=True)
    model.eval()

    def write_files(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    existed = out_dir.is_dir() and any(out_dir.iterdir())
    try:
        replace_folder(out_dir, write_files, carry=kept_by_overwrite(out_dir))
    except CheckpointError as err:  # a full disk, a read-only folder, ...: said in one line, nothing changed
        kept = "the old folder is intact" if existed else "nothing was written"
        raise CheckpointError.saying(f"could not write {out_dir} ({describe_write_error(err)}); {kept}", err) from err
    return model, tokenizer


def check_out_dir(out_dir: Path, overwrite: bool, inputs=()) -> None:
    """Refuse a file, a non-empty folder without `overwrite`, and a folder whose replacement would delete an input
    (or the working directory)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SeedConversionError(f"--out {out_dir} is a file; give a folder (it is created if missing)")
    if not out_dir.is_dir():
        return
    held = sorted(p.name for p in out_dir.iterdir())
    if not held:
        return
    if not overwrite:
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        raise SeedConversionError(
            f"--out {out_dir} is not empty (it holds {shown}): choose a new or empty folder, or replace the whole "
            "folder with --overwrite"
        )
    resolved = out_dir.resolve()
    for inside in (*map(Path, inputs), Path.cwd()):
        if inside.resolve() == resolved or resolved in inside.resolve().parents:
            what = "the working directory" if inside == Path.cwd() else f"the input {inside}"
            raise SeedConversionError(f"--out {out_dir} holds {what}, which --overwrite would delete; "
                                      "choose another folder")


def kept_by_overwrite(out_dir: Path):
    """What `--overwrite` carries over into the new folder: in a tinygpt model's folder, everything but that
    model's files (a train.py run's, `checkpoint.carried_over`, and its prepared data); in any other folder,
    everything but the files the conversion writes, which the user asked to replace."""
    if holds_model(out_dir) or is_tinygpt_trainer_state(out_dir / "trainer_state.json"):
        return lambda name: carried_over(name) and name != PREPARED_DIR
    return lambda name: name not in CONVERTED_FILES


def add_arguments(parser) -> None:
    parser.add_argument("state_dict", metavar="STATE_DICT", help="file written by torch.save(model.state_dict(), ...)")
    parser.add_argument("--data", required=True, metavar="CORPUS", help="the text the model was trained on")
    parser.add_argument("--out", required=True, metavar="DIR", type=folder_name,
                        help="folder to write the tinygpt model into (new or empty)")
    parser.add_argument(
        "--attn-scale", default="n_embd", choices=("n_embd", "head_size"),
        help="the series divides attention scores by sqrt(n_embd) (default); copies that use k.shape[-1] need head_size",
    )
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty --out folder in one move: nothing of the model it held is kept, "
                        "files of yours that the conversion does not write are")


def run(args) -> int:
    clean_leftovers(args.out)  # of a convert-seed --overwrite or train.py --overwrite that was killed: said
    model, tokenizer = convert_seed(args.state_dict, args.data, args.out, attn_scale=args.attn_scale,
                                    overwrite=args.overwrite)
    c = model.config
    print(
        f"wrote {args.out}: {sum(p.numel() for p in model.parameters()):,} parameters, n_layer={c.n_layer}, "
        f"n_head={c.n_head}, n_embd={c.n_embd}, block_size={c.block_size}, vocab_size={c.vocab_size}"
    )
    return 0
