"""TinyGPT configuration: the hyper-parameters of the blog series' character-level GPT.

This file is copied next to the weights by `save_pretrained`, so it imports only torch/transformers.
"""

from huggingface_hub.dataclasses import strict
from torch.compiler import is_compiling
from transformers import PreTrainedConfig

ACTIVATIONS = ("relu", "gelu")
ATTENTION_SCALES = ("n_embd", "head_size")
_get = object.__getattribute__


@strict
class TinyGPTConfig(PreTrainedConfig):
    r"""
    The seed's global hyper-parameters, as a transformers config. The defaults are the blog series' model.

    vocab_size (`int`, defaults to 65):
        Number of distinct characters (65 for tiny Shakespeare). Token ids are indices into the sorted characters.
    n_embd (`int`, defaults to 64):
        Width of every token vector (embeddings, residual stream, attention).
    n_head (`int`, defaults to 4):
        Attention heads per block; each head reads `head_size = n_embd // n_head` dimensions.
    n_layer (`int`, defaults to 2):
        Number of transformer `Block`s.
    block_size (`int`, defaults to 32):
        Context length: the number of learned position embeddings, so the most characters the model can see.
        Generation past it slides the window: each new character is predicted from the last `block_size` ones.
    dropout (`float`, defaults to 0.0):
        Dropout after the attention projection and after the feed-forward, as in the seed. 0 disables it.
    activation (`str`, defaults to `"relu"`):
        Non-linearity of the feed-forward: `"relu"` (the seed) or `"gelu"`.
    attn_scale (`str`, defaults to `"n_embd"`):
        What the attention scores are divided by the square root of. The seed's `Head` writes
        `q @ k.transpose(-2, -1) * C**-0.5` with `C = n_embd`, so `"n_embd"` is the default; `"head_size"` is the
        `1/sqrt(head_size)` of "Attention Is All You Need" (and of copies of the series that use `k.shape[-1]`).
    use_cache (`bool`, defaults to `True`):
        Whether `forward` returns a key/value cache so `generate()` computes each new character incrementally.
    """

    model_type = "tinygpt"
    # The seed's names are the real fields; these let generic transformers code (caches, pipelines) find them.
    attribute_map = {
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
        "max_position_embeddings": "block_size",
    }

    vocab_size: int = 65
    n_embd: int = 64
    n_head: int = 4
    n_layer: int = 2
    block_size: int = 32
    dropout: float | int = 0.0
    activation: str = "relu"
    attn_scale: str = "n_embd"
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        # Checked here rather than in a `validate_*` hook: `@strict` would wrap the error in its own exception
        # type, and callers (train.py, the tests) expect the plain `ValueError` that names the field.
        self._check_values()
        super().__post_init__(**kwargs)

    def _check_values(self):
        for name in ("vocab_size", "n_embd", "n_head", "n_layer", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TinyGPTConfig: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"TinyGPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) so every head "
                f"gets n_embd // n_head dimensions; try n_head in "
                f"{[h for h in range(1, self.n_embd + 1) if self.n_embd % h == 0][:8]}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TinyGPTConfig: dropout must be in [0, 1), got {self.dropout!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TinyGPTConfig: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.attn_scale not in ATTENTION_SCALES:
            raise ValueError(f"TinyGPTConfig: attn_scale must be one of {ATTENTION_SCALES}, got {self.attn_scale!r}")

    def __getattribute__(self, key):
        # transformers 5.x answers every config read through two Python-level `__getattribute__` layers (the
        # `attribute_map` aliases above, then per-layer values of heterogeneous configs): 1-2 us a read. The library's
        # mask creation and output capture read the config ~8 times per `forward`, a few per cent of a decoding step
        # of the series' model (benchmarks/README.md). Names that are not aliases, of a config without per-layer
        # values, are what those layers would return anyway: `object.__getattribute__`'s answer. (Not while
        # torch.compile traces: dynamo follows transformers' own layers but not this shortcut.)
        if is_compiling() or key in _get(self, "attribute_map") or "_heterogeneity_spec" in _get(self, "__dict__"):
            return super().__getattribute__(key)
        return _get(self, key)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


__all__ = ["TinyGPTConfig"]
