"""The seed's character tokenizer as a Hugging Face fast tokenizer.

The seed (post 36) builds its vocabulary as `chars = sorted(set(text))` and encodes a character as its index in
that list. `char_tokenizer(text)` builds exactly that mapping on the `tokenizers` library: a word-level model over
single characters, so there is no Python dict in the hot path, no pickle on disk (`tokenizer.json`), no special
token added to prompts, and `decode(encode(s)) == s` for any text made of known characters.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


class CharTokenizer(PreTrainedTokenizerFast):
    """A fast tokenizer that names the characters it has never seen, and pads with an ordinary character.

    The backend alone fails on an unknown character with "WordLevel error: Missing [UNK] token"; this class
    checks first and raises a `ValueError` that lists them.

    Padding (to batch prompts of different lengths) uses id 0, the first vocabulary character, masked out by
    the attention mask. It is deliberately *not* a special token: transformers registers special tokens with the
    backend, and `decode(..., skip_special_tokens=True)` (the text-generation pipeline's default) would then drop
    every real occurrence of that character, usually every newline. So the pad token is not saved at all: a
    plain `PreTrainedTokenizerFast` load (no tinygpt installed) has no pad token and decodes exactly; set
    `tokenizer.pad_token = tokenizer.convert_ids_to_tokens(0)` there before padding a batch.

    Saved with `tokenizer_class: "CharTokenizer"`: where tinygpt is installed `AutoTokenizer` loads this class,
    elsewhere (a Space, a machine with only transformers) it falls back to the plain fast tokenizer, which reads
    the same `tokenizer.json`.
    """

    @property
    def pad_token(self) -> str:
        return self._special_tokens_map.get("pad_token") or self.convert_ids_to_tokens(0)

    @property
    def pad_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.pad_token)

    def unknown_characters(self, text: str | list | tuple) -> list[str]:
        """The characters of `text` (a string or a nested list of strings) that are not in the vocabulary."""
        seen = set()
        _collect_characters(text, seen)
        return sorted(seen - self._vocabulary_characters())

    def check_characters(self, text: str | list | tuple) -> None:
        """Raise a `ValueError` naming every character of `text` that the vocabulary does not have."""
        unknown = self.unknown_characters(text)
        if unknown:
            raise ValueError(describe_unknown_characters(unknown, self._vocabulary_characters()))

    def _vocabulary_characters(self) -> frozenset[str]:
        # Cached, keyed by size: get_vocab() copies the whole vocabulary out of the Rust tokenizer.
        cached = getattr(self, "_vocab_cache", None)
        if cached is None or cached[0] != len(self):
            cached = (len(self), frozenset(self.get_vocab()))
            self._vocab_cache = cached
        return cached[1]

    def _save_pretrained(self, save_directory, file_names, legacy_format=None, filename_prefix=None):
        # `tokenizer(..., padding=True)` switches padding on in the backend, and tokenizer.json would remember the
        # pad token: every transformers load then makes it a special token (see the class docstring).
        self.backend_tokenizer.no_padding()
        return super()._save_pretrained(save_directory, file_names, legacy_format, filename_prefix)

    def _encode_plus(self, text, text_pair=None, **kwargs):
        # Every encode path of transformers' fast tokenizers (__call__, encode, batches) goes through here.
        self.check_characters(text)
        if text_pair is not None:
            self.check_characters(text_pair)
        return super()._encode_plus(text, text_pair, **kwargs)


def describe_unknown_characters(unknown, vocabulary) -> str:
    shown = ", ".join(repr(c) for c in sorted(unknown))
    known = "".join(sorted(vocabulary))
    preview = known if len(known) <= 80 else known[:80] + "..."
    return (
        f"{len(unknown)} character(s) not in the model's vocabulary: {shown}. "
        f"The model only knows the {len(vocabulary)} characters of its training text: {preview!r}"
    )


def _collect_characters(text, into: set) -> None:
    if isinstance(text, str):
        into.update(text)
    elif isinstance(text, (list, tuple)):
        for item in text:
            _collect_characters(item, into)


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
    """The tokenizer for an already sorted list of distinct characters (id i is chars[i])."""
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


__all__ = ["CharTokenizer", "char_tokenizer", "tokenizer_from_characters"]
