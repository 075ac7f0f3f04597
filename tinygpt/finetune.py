"""`--init-from MODEL`: start a run from a trained tinygpt model (a folder or a Hub repo id) instead of random weights.

The new model has the base model's dimensions and architecture options (its config), its weights and its
vocabulary. Characters of the new text the base does not know are appended to the vocabulary in sorted order
(the base's characters keep their ids, so the base's rows still mean the same characters); their rows of the
token embedding and of the head keep the fresh initialisation the model's own `_init_weights` gives them
(PyTorch's defaults, as for a model trained from scratch).
"""

from __future__ import annotations

import torch

from .configuration_tinygpt import TinyGPTConfig
from .loading import check_model_dir, load_pretrained, resolve_model_dir
from .settings import MODEL_DIMS, TrainingError


def base_config(init_from: str) -> TinyGPTConfig:
    """The config of the model `init_from` names (downloaded from the Hub if it is a repo id), checked."""
    return check_model_dir(resolve_model_dir(str(init_from)))


def load_base(init_from: str):
    """(model, its characters in id order) of the model to fine-tune."""
    model, tokenizer = load_pretrained(str(init_from))
    chars = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return model, chars


def conflicting_dims(given: dict, config: TinyGPTConfig, init_from: str) -> None:
    """Refuse explicit --n-layer/--n-head/--n-embd/--block-size values that differ from the base model's."""
    clash = [f"--{k.replace('_', '-')} {given[k]}" for k in MODEL_DIMS if k in given and given[k] != getattr(config, k)]
    if clash:
        dims = ", ".join(f"{k} {getattr(config, k)}" for k in MODEL_DIMS)
        raise TrainingError(f"--init-from {init_from} is a model of {dims}; a fine-tune keeps its dimensions, so "
                            f"{' and '.join(clash)} cannot apply: leave {'them' if len(clash) > 1 else 'it'} out")


def grown_config(base: TinyGPTConfig, vocab_size: int, dropout: float) -> TinyGPTConfig:
    """The base's config with the grown vocabulary and this run's dropout (a training choice, not the model's)."""
    values = base.to_dict()
    values.update(vocab_size=vocab_size, dropout=dropout)
    return TinyGPTConfig.from_dict(values)


@torch.no_grad()
def copy_base_weights(base: torch.nn.Module, model: torch.nn.Module) -> None:
    """Every tensor of `base` into `model`; where the vocabulary grew (the first dimension of the token embedding,
    the head's weight and bias), the base's rows go first and the new rows keep their initialisation."""
    target = model.state_dict()
    for name, tensor in base.state_dict().items():
        dest = target[name]
        if dest.shape == tensor.shape:
            dest.copy_(tensor)
        elif dest.shape[1:] == tensor.shape[1:] and dest.shape[0] > tensor.shape[0]:
            dest[: tensor.shape[0]].copy_(tensor)
        else:  # cannot happen with the base's own config; a guard against a silent mismatch
            raise TrainingError(f"--init-from: tensor {name} has shape {tuple(tensor.shape)}, the new model needs "
                                f"{tuple(dest.shape)}")
