"""The seed's character tokenizer as a Hugging Face fast tokenizer.

The seed (post 36) builds its vocabulary as `chars = sorted(set(text))` and encodes a character as its index in
that list. `char_tokenizer(text)` builds exactly that mapping on the `tokenizers` library: a word-level model over
single characters, so there is no Python dict in the hot path, no pickle on disk (`tokenizer.json`), no special
token added to prompts, and `decode(encode(s)) == s` for any text made of known characters.

The tokenizer class, `CharTokenizer`, is in tokenization_tinygpt.py: saving a tokenizer copies that file next to
`tokenizer.json` and writes `auto_map` into tokenizer_config.json, so the folder's tokenizer keeps its named
errors and its left padding wherever only transformers is installed (load it with `trust_remote_code=True`).
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

# The class lives in its own file, which save_pretrained copies next to the weights (remote code).
from .tokenization_tinygpt import CharTokenizer, describe_unknown_characters


def char_tokenizer(text: str) -> CharTokenizer:
    """A tokenizer whose ids are the indices of `sorted(set(text))`, the seed's `stoi`/`itos`.

    `len(tokenizer)` is the number of distinct characters; nothing else is added to the vocabulary, and no
    special token exists. Batches are padded on the left (as generation with a decoder-only model needs) with
    the first vocabulary character, an ordinary character hidden by the attention mask (see `CharTokenizer`).
    """
    if not isinstance(text, str):
        raise TypeError(f"char_tokenizer expects the training text as a str, got {type(text).__name__}")
    chars = sorted(set(text))
    if not chars:
        raise ValueError("char_tokenizer: the text is empty, so there are no characters to build a vocabulary from")
    return tokenizer_from_characters(chars)


def tokenizer_from_characters(chars: list[str]) -> CharTokenizer:
    """The tokenizer for a list of distinct characters, id i = chars[i]: sorted for a model trained from scratch;
    for a fine-tune (`train.py --init-from`), the base model's characters in their order, then the new ones."""
    vocab = {c: i for i, c in enumerate(chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    # One token per character: `(?m).` is Oniguruma's "any character, newline included".
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
    backend.decoder = decoders.Fuse()  # join characters back with nothing in between
    return CharTokenizer(
        tokenizer_object=backend,
        padding_side="left",
        clean_up_tokenization_spaces=False,  # " ." must decode to " .", not "."
        model_input_names=["input_ids", "attention_mask"],
    )


__all__ = ["CharTokenizer", "char_tokenizer", "describe_unknown_characters", "tokenizer_from_characters"]
