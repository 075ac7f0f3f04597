import pytest
from transformers import AutoConfig, DynamicCache

from tinygpt import TinyGPTConfig


def test_defaults_are_the_seed():
    c = TinyGPTConfig()
    assert (c.vocab_size, c.n_embd, c.n_head, c.n_layer, c.block_size, c.dropout) == (65, 64, 4, 2, 32, 0.0)
    assert (c.activation, c.attn_scale, c.model_type) == ("relu", "n_embd", "tinygpt")


def test_hf_aliases_read_and_write_the_seed_fields():
    c = TinyGPTConfig(n_embd=48, n_head=6, n_layer=3, block_size=20)
    assert (c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.max_position_embeddings) == (48, 6, 3, 20)
    c2 = TinyGPTConfig(hidden_size=96, num_attention_heads=8, num_hidden_layers=5, max_position_embeddings=64)
    assert (c2.n_embd, c2.n_head, c2.n_layer, c2.block_size) == (96, 8, 5, 64)
    # generic transformers code sizes its cache from the aliases
    assert len(DynamicCache(config=c).layers) == 3


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_embd": 65, "n_head": 4}, "n_embd"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": -3}, "block_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"n_layer": 0}, "n_layer"),
        ({"n_head": 0}, "n_head"),
        ({"n_embd": -64}, "n_embd"),
        ({"activation": "swish"}, "activation"),
        ({"attn_scale": "sqrt"}, "attn_scale"),
    ],
)
def test_impossible_values_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TinyGPTConfig(**kwargs)


def test_round_trip_and_auto_config(tmp_path):
    import tinygpt  # noqa: F401  (registers the model type)

    c = TinyGPTConfig(vocab_size=30, n_embd=24, n_head=3, n_layer=1, block_size=12, dropout=0.1, attn_scale="head_size")
    c.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, TinyGPTConfig)
    fields = ("vocab_size", "n_embd", "n_head", "n_layer", "block_size", "dropout", "activation", "attn_scale")
    assert {f: getattr(loaded, f) for f in fields} == {f: getattr(c, f) for f in fields}
    assert loaded.head_size == 8
