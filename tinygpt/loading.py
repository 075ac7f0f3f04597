"""Loading a tinygpt model + tokenizer from a folder or a Hub repo, with errors that say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .common import is_local_path, one_line
from .configuration_tinygpt import TinyGPTConfig
from .modeling_tinygpt import TinyGPTForCausalLM
from .tokenization import CharTokenizer

WEIGHTS_NAME = "model.safetensors"
# The tokenizer's files that are JSON (tokenizer.json is read by the tokenizers library, whose error names no file).
TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# What a model needs from a Hub repo; optimizer state and plots stay on the Hub.
MODEL_FILES = ["*.json", "*.safetensors", "*.py"]


class ModelLoadError(ValueError):
    """A folder or repo that is not a loadable tinygpt model."""


class NotATinyGPTModelError(ModelLoadError):
    """A model, but of another kind (config.json's model_type is not "tinygpt")."""


# The one "is this a tinygpt model" check, in three steps that the CLI (load_pretrained), the Hub code (push, space)
# and the demo all use, so each problem is named in the same words everywhere:
#   check_local_folder  -> "no such folder" / "is a file"
#   read_tinygpt_config -> "no config.json" / "not valid JSON" / "is a 'gpt2' model, not a tinygpt model"
#   check_model_dir     -> the above, then the weights ("no model.safetensors", tensor names and shapes) and,
#                          with need_tokenizer, "no tokenizer.json"


def check_local_folder(path: Path, name: str | None = None, missing_hint: str = "") -> None:
    """A path that should be a model folder: it exists and is a folder."""
    name = name or str(path)
    if not path.exists():
        raise ModelLoadError(f"{name}: no such folder" + (f" ({missing_hint})" if missing_hint else ""))
    if not path.is_dir():
        raise ModelLoadError(f"{name}: is a file; give the model folder (the one with config.json)")


def check_tinygpt_config(config, name: str, hint: str = "") -> None:
    """config.json's content (a dict, local or downloaded) says this is a tinygpt model; `hint` ends the message."""
    suffix = f": {hint}" if hint else ""
    if not isinstance(config, dict):
        raise NotATinyGPTModelError(f"{name}: its config.json is not a JSON object, so it is not a saved model{suffix}")
    model_type = config.get("model_type")
    if model_type != TinyGPTConfig.model_type:
        what = f"a {model_type!r} model" if model_type else "a config.json without model_type"
        raise NotATinyGPTModelError(f"{name} is {what}, not a tinygpt model{suffix}")


def read_tinygpt_config(model_dir: Path, name: str | None = None) -> dict:
    """The folder's config.json as a dict, checked to be a tinygpt model's."""
    name = name or str(model_dir)
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{name}: no config.json, so this is not a saved model folder (make one with "
                             "save_pretrained or train.py)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{config_file}: not valid JSON ({err})") from None
    check_tinygpt_config(config, name)
    return config


def resolve_model_dir(name_or_path: str, revision: str | None = None) -> Path:
    """A local folder as is; a Hub repo id (`user/name`, or a bare `name` such as `gpt2`: the rule of
    `tinygpt.common.is_local_path`, which app.py follows too) is downloaded, or taken from the cache."""
    if is_local_path(name_or_path):
        path = Path(name_or_path).expanduser()
        check_local_folder(path, name_or_path, "and not a Hub repo id, which is user/name")
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (HfHubHTTPError, HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    try:
        return Path(snapshot_download(name_or_path, revision=revision, allow_patterns=MODEL_FILES))
    except HFValidationError:  # is_local_path let through something the Hub client still refuses
        raise ModelLoadError(f"{name_or_path}: no such folder, and not a valid Hub repo id (user/name)") from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"{name_or_path}: the Hub repo has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"{name_or_path}: no such folder, and no such Hub repo (or it is private: log in with `hf auth login` "
            "or set HF_TOKEN)"
        ) from None
    except LocalEntryNotFoundError as err:  # the Hub did not answer (offline, a wrong HF_ENDPOINT) and no cached copy
        from huggingface_hub import constants

        cause = one_line(err.__cause__) if err.__cause__ else one_line(err)
        raise ModelLoadError(f"{name_or_path}: no such folder, and no such repo reachable on the Hub "
                             f"({constants.ENDPOINT}: {cause})") from None
    except (HfHubHTTPError, OSError) as err:
        raise ModelLoadError(f"{name_or_path}: could not download it from the Hub: {one_line(err)}") from None


def check_model_dir(model_dir: Path, name: str | None = None, need_tokenizer: bool = False) -> TinyGPTConfig:
    """Validate a folder before transformers sees it: config, weights file, tensor names and shapes (and, with
    `need_tokenizer`, tokenizer.json). `name` is how messages call the folder (default: its path)."""
    name = name or str(model_dir)
    read_tinygpt_config(model_dir, name)
    try:
        config = TinyGPTConfig.from_pretrained(model_dir)
    except ValueError as err:  # impossible dimensions: TinyGPTConfig names the field
        raise ModelLoadError(f"{name}: config.json: {one_line(err)}") from None
    weights = model_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelLoadError(f"{name}: no {WEIGHTS_NAME}; the weights were not saved or not downloaded")
    if need_tokenizer and not (model_dir / "tokenizer.json").is_file():
        raise ModelLoadError(f"{name}: no tokenizer.json; save the model and its tokenizer together in this folder")
    check_tokenizer_files(model_dir)
    try:
        with safe_open(weights, framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError) as err:
        raise ModelLoadError(f"{weights}: corrupt or truncated safetensors file ({err}); save or download it again") from None
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in TinyGPTForCausalLM(config).state_dict().items()}
    for key, shape in expected.items():
        if key not in shapes:
            raise ModelLoadError(f"{weights}: tensor {key} is missing")
        if shapes[key] != shape:
            raise ModelLoadError(
                f"{weights}: tensor {key} has shape {shapes[key]} but config.json needs {shape} "
                f"(n_embd={config.n_embd}, n_layer={config.n_layer}, block_size={config.block_size}, "
                f"vocab_size={config.vocab_size}); the weights and config.json come from different models"
            )
    return config


def check_tokenizer_files(model_dir: Path) -> None:
    """Each of the tokenizer's JSON files that the folder has is JSON: a damaged one is named, instead of a bare
    "Expecting property name enclosed in double quotes: line 1 column 30" from the tokenizers library."""
    for filename in TOKENIZER_JSON_FILES:
        path = model_dir / filename
        if not path.is_file():
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ModelLoadError(f"{path}: not valid JSON ({one_line(err)}); the tokenizer file is damaged: save "
                                 "the tokenizer again (save_pretrained) or download the model again") from None


def load_pretrained(name_or_path: str, revision: str | None = None, device: str | torch.device = "cpu"):
    """(model in eval mode, tokenizer) from a tinygpt folder or Hub repo id."""
    model_dir = resolve_model_dir(str(name_or_path), revision)
    config = check_model_dir(model_dir, need_tokenizer=True)
    model = TinyGPTForCausalLM.from_pretrained(model_dir, config=config).to(device).eval()
    try:
        tokenizer = CharTokenizer.from_pretrained(model_dir)
    except Exception as err:  # JSON, but not a tokenizer (the tokenizers library's message names no file)
        raise ModelLoadError(f"{model_dir / 'tokenizer.json'}: not a tokenizer this can load ({one_line(err)}); "
                             "save the tokenizer again (save_pretrained) or download the model again") from None
    if len(tokenizer) != config.vocab_size:
        raise ModelLoadError(
            f"{model_dir}: the tokenizer has {len(tokenizer)} characters but the model's vocab_size is "
            f"{config.vocab_size}; they were not saved together"
        )
    return model, tokenizer
