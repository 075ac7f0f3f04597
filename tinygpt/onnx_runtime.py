"""Running a tinygpt ONNX export on onnxruntime: the seed's decoding loop, with numpy and onnxruntime only.

    decoder = OnnxDecoder("out")                       # out/onnx/model.onnx + out/config.json
    ids = decoder.generate([[0]], max_new_tokens=200)  # greedy; temperature=0.8, top_k=..., seed=... to sample

The loop is `generate()`'s (tinygpt.modeling_tinygpt): the prompt runs once, then each new character runs alone
against the key/value cache while the text fits in `block_size`; past it, learned absolute positions mean the
window slides and every character moves, so each step runs the last `block_size` characters again, at positions
0..block_size-1, with an empty past. Greedy text equals PyTorch's `generate(do_sample=False)`; sampled text
follows the same distribution (temperature, then top-k, then top-p, as transformers orders them) drawn from numpy's
generator, so the same seed does not give PyTorch's sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ONNX_FILE = "onnx/model.onnx"


class OnnxDecoder:
    """An onnxruntime session on an export, and the decoding loop around it."""

    def __init__(self, model_dir: str | Path, threads: int = 1, providers: list[str] | None = None):
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self._open(model_dir / ONNX_FILE, config, threads, providers)

    @classmethod
    def from_file(cls, onnx_path: str | Path, config: dict, threads: int = 1, providers: list[str] | None = None):
        decoder = cls.__new__(cls)
        decoder._open(Path(onnx_path), config, threads, providers)
        return decoder

    def _open(self, onnx_path: Path, config: dict, threads: int, providers):
        import onnxruntime as ort

        self.n_layer, self.n_head = int(config["n_layer"]), int(config["n_head"])
        self.head_dim = int(config["n_embd"]) // self.n_head
        self.block_size, self.vocab_size = int(config["block_size"]), int(config["vocab_size"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # one thread: a character model's matrices are too small to split
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers or ["CPUExecutionProvider"])
        self.past_names = [f"past_key_values.{i}.{kind}" for i in range(self.n_layer) for kind in ("key", "value")]

    def empty_past(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, self.n_head, 0, self.head_dim), dtype=np.float32) for _ in self.past_names]

    def forward(self, input_ids, attention_mask=None, position_ids=None, past=None):
        """One run of the graph: (logits [batch, new, vocab], presents). Defaults: no padding, positions after
        the past, an empty past."""
        input_ids = np.asarray(input_ids, dtype=np.int64)
        batch, new = input_ids.shape
        past = self.empty_past(batch) if past is None else past
        cached = past[0].shape[2]
        if attention_mask is None:
            attention_mask = np.ones((batch, cached + new), dtype=np.int64)
        attention_mask = np.asarray(attention_mask, dtype=np.int64)
        if position_ids is None:
            position_ids = positions(attention_mask)[:, -new:]
        feed = {"input_ids": input_ids, "attention_mask": attention_mask,
                "position_ids": np.asarray(position_ids, dtype=np.int64), **dict(zip(self.past_names, past))}
        logits, *presents = self.session.run(None, feed)
        return logits, presents

    def generate(self, input_ids, max_new_tokens: int, attention_mask=None, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int | None = None, on_token=None) -> np.ndarray:
        """The prompt ids `[batch, length]` (left-padded where `attention_mask` has zeros) followed by
        `max_new_tokens` new ids per row. temperature 0 is greedy (ties: the lowest id, as torch.argmax).
        `on_token(ids_column)` is called with each new column of ids as soon as it is chosen."""
        ids = np.asarray(input_ids, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError("input_ids must be [batch, length] with length >= 1 (an empty prompt is [[0]])")
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, dtype=np.int64)
        rng = np.random.default_rng(seed)
        past, cached = self.empty_past(ids.shape[0]), 0
        for _ in range(max_new_tokens):
            length = ids.shape[1]
            if length <= self.block_size:  # the cache is valid: run what it has not seen
                logits, past = self.forward(ids[:, cached:], mask, positions(mask)[:, cached:], past)
                cached = length
            else:  # the window slides: the last block_size characters again, at positions 0..block_size-1
                window = mask[:, -self.block_size:]
                logits, _ = self.forward(ids[:, -self.block_size:], window, positions(window))
            token = pick(logits[:, -1], temperature, top_k, top_p, rng)
            ids = np.concatenate([ids, token[:, None]], axis=1)
            mask = np.concatenate([mask, np.ones_like(token)[:, None]], axis=1)
            if on_token is not None:
                on_token(token)
        return ids


def positions(attention_mask: np.ndarray) -> np.ndarray:
    """Each character's position, counted from the first unpadded one of its row (as generate() counts them)."""
    return np.clip(np.cumsum(attention_mask, axis=-1) - 1, 0, None).astype(np.int64)


def pick(logits: np.ndarray, temperature: float, top_k: int, top_p: float, rng: np.random.Generator) -> np.ndarray:
    """The next id of each row from its last logits [batch, vocab]: argmax, or a sample (temperature, top-k,
    top-p, in transformers' order)."""
    if temperature <= 0:
        return logits.argmax(axis=-1).astype(np.int64)
    scores = logits.astype(np.float64) / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = np.sort(scores, axis=-1)[:, -top_k][:, None]
        scores = np.where(scores < kth, -np.inf, scores)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p < 1.0:  # keep the smallest set of likeliest ids whose mass reaches top_p (at least one)
        order = np.argsort(-probs, axis=-1)
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        drop = np.cumsum(sorted_probs, axis=-1) - sorted_probs >= top_p
        np.put_along_axis(probs, order, np.where(drop, 0.0, sorted_probs), axis=-1)
        probs /= probs.sum(axis=-1, keepdims=True)
    return np.array([rng.choice(probs.shape[-1], p=row) for row in probs], dtype=np.int64)


__all__ = ["OnnxDecoder", "pick", "positions"]
