"""The seed's character tokenizer class, saved next to the weights as remote code.

This file imports only the standard library, tokenizers and transformers: `save_pretrained` copies it into the
model folder and writes `auto_map` into tokenizer_config.json, so that where tinygpt is not installed (the Hub
path, a Space) `AutoTokenizer.from_pretrained(dir, trust_remote_code=True)` still gives this class, with its
named errors and its left padding. `tinygpt.tokenization` builds tokenizers of this class from a text.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast


class CharTokenizer(PreTrainedTokenizerFast):
    """A fast tokenizer that names the characters it has never seen, and pads with an ordinary character.

    The backend alone fails on an unknown character with "WordLevel error: Missing [UNK] token"; this class
    checks first and raises a `ValueError` that lists them.

    Padding (to batch prompts of different lengths) uses id 0, the first vocabulary character, masked out by
    the attention mask, on the left (saved as `padding_side`), as generation with a decoder-only model needs.
    It is deliberately *not* a special token: transformers registers special tokens with the backend, and
    `decode(..., skip_special_tokens=True)` (the text-generation pipeline's default) would then drop every real
    occurrence of that character, usually every newline. So the pad token is not saved at all; this class
    answers `pad_token` itself. (A plain `PreTrainedTokenizerFast` load of the folder, without
    `trust_remote_code=True`, has no pad token and no named errors, but decodes exactly.)

    Since every id is a real character, the ids alone cannot say which are padding: the attention mask does.
    `decode` and `batch_decode` take it, `tokenizer.batch_decode(batch["input_ids"],
    attention_mask=batch["attention_mask"])`, and leave out exactly the masked positions; `skip_special_tokens`
    leaves the text as it is. (After `generate`, the new characters, `out[:, batch["input_ids"].shape[1]:]`,
    hold no padding.)

    For the same reason `bos_token` and `eos_token` are answered, not registered: both are that same first
    character, where the seed starts generating (`torch.zeros((1, 1))`; in tiny Shakespeare the newline between
    speeches). Tools that need a text boundary ask for them: lm-evaluation-harness predicts a text's first
    character after the BOS token and ends the answers of its generation tasks at the EOS text. Nothing adds them
    to prompts (`add_bos_token` is off), and generation does not stop at them: `generate()` reads `eos_token_id`
    from the generation config, which has none.
    """

    @property
    def pad_token(self) -> str:
        return self._boundary_token("pad_token")

    @property
    def pad_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.pad_token)

    @property
    def bos_token(self) -> str:
        return self._boundary_token("bos_token")

    @property
    def bos_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.bos_token)

    @property
    def eos_token(self) -> str:
        return self._boundary_token("eos_token")

    @property
    def eos_token_id(self) -> int:
        return self.convert_tokens_to_ids(self.eos_token)

    def _boundary_token(self, name: str) -> str:
        # One set by hand (`tokenizer.pad_token = ...` stores it as a real special token) wins.
        return self._special_tokens_map.get(name) or self.convert_ids_to_tokens(0)

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

    def decode(self, token_ids, skip_special_tokens: bool = False, attention_mask=None, **kwargs):
        """transformers' `decode` (one sequence or a batch, as `batch_decode` passes it), and with `attention_mask`
        (of the same shape as `token_ids`) the masked positions, the padding, left out."""
        if attention_mask is not None:
            token_ids = _unmasked(token_ids, attention_mask)
        return super().decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs)

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
    """The one message for characters a model does not know: which ones, and which it does know."""
    shown = ", ".join(repr(c) for c in sorted(unknown))
    known = "".join(sorted(vocabulary))
    preview = known if len(known) <= 80 else known[:80] + "..."
    return (
        f"{len(unknown)} character(s) not in the model's vocabulary: {shown}. "
        f"The model only knows the {len(vocabulary)} characters of its training text: {preview!r}"
    )


def _unmasked(token_ids, attention_mask):
    """The ids whose mask is 1: one sequence ([ids], [mask]) or a batch ([[ids], ...], [[mask], ...]); lists,
    tensors or arrays."""
    ids = token_ids.tolist() if hasattr(token_ids, "tolist") else token_ids
    mask = attention_mask.tolist() if hasattr(attention_mask, "tolist") else attention_mask
    batched = bool(ids) and isinstance(ids[0], (list, tuple))
    rows, masks = (ids, mask) if batched else ([ids], [mask])
    if len(rows) != len(masks) or any(not isinstance(m, (list, tuple)) or len(r) != len(m)
                                      for r, m in zip(rows, masks)):
        raise ValueError("attention_mask must have the shape of the ids it masks (the batch's own mask, or one "
                         "row's for one sequence)")
    kept = [[i for i, keep in zip(r, m) if keep] for r, m in zip(rows, masks)]
    return kept if batched else kept[0]


def _collect_characters(text, into: set) -> None:
    if isinstance(text, str):
        into.update(text)
    elif isinstance(text, (list, tuple)):
        for item in text:
            _collect_characters(item, into)


__all__ = ["CharTokenizer", "describe_unknown_characters"]
