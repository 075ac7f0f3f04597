"""`tinygpt convert-seed`: a state_dict of the blog's GPT becomes a tinygpt folder with the same logits."""

import subprocess
import sys

import pytest
import torch
from seed_gpt import build_seed_gpt

from tinygpt.convert import SeedConversionError, convert_seed
from tinygpt.loading import load_pretrained


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tinygpt.cli", *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def seed_checkpoint(tmp_path, small_text):
    """A seed GPT (random weights) sized for small_text, saved as the series would: torch.save(state_dict)."""
    torch.manual_seed(5)
    seed = build_seed_gpt(vocab=len(set(small_text)), embd=48, heads=3, layers=2, block=24).eval()
    corpus = tmp_path / "input.txt"
    corpus.write_text(small_text, encoding="utf-8")
    path = tmp_path / "seed.pt"
    torch.save(seed.state_dict(), path)
    return seed, path, corpus


def test_cli_converts_with_the_same_logits(tmp_path, seed_checkpoint, small_text):
    seed, path, corpus = seed_checkpoint
    result = run_cli("convert-seed", path, "--data", corpus, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "n_layer=2, n_head=3, n_embd=48, block_size=24" in result.stdout
    model, tokenizer = load_pretrained(tmp_path / "out")
    ids = tokenizer(small_text[:24], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        diff = (model(ids).logits - seed(ids)[0].view(1, 24, -1)).abs().max().item()
    assert diff < 1e-4


def test_readers_copies_with_other_names_and_wrappers_convert(tmp_path, seed_checkpoint):
    seed, _, corpus = seed_checkpoint
    renames = {"token_embedding.": "token_embedding_table.", "position_embedding.": "position_embedding_table.", "head.": "lm_head."}
    state = {}
    for key, value in seed.state_dict().items():
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old):]
        state["_orig_mod." + key] = value  # as saved from a torch.compile'd model
    path = tmp_path / "karpathy.pt"
    torch.save({"model": state}, path)
    model, _ = convert_seed(path, corpus, tmp_path / "out")
    x = torch.randint(0, model.config.vocab_size, (2, 10))
    assert (model(x).logits - seed(x)[0].view(2, 10, -1)).abs().max() < 1e-4


def test_head_size_scaling_matches_a_copy_that_uses_it(tmp_path, seed_checkpoint):
    import seed_gpt

    seed, path, corpus = seed_checkpoint
    model, _ = convert_seed(path, corpus, tmp_path / "out", attn_scale="head_size")
    # what seed_gpt.Head computes with k.shape[-1] instead of C: scale the queries by sqrt(C / head_size)
    x = torch.randint(0, model.config.vocab_size, (1, 12))
    original = seed_gpt.Head.forward

    def head_size_forward(self, x):
        B, T, C = x.shape
        k, q, v = self.key(x), self.query(x), self.value(x)
        wei = (q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5).masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        return torch.softmax(wei, dim=-1) @ v

    seed_gpt.Head.forward = head_size_forward
    try:
        reference = seed(x)[0].view(1, 12, -1)
    finally:
        seed_gpt.Head.forward = original
    assert (model(x).logits - reference).abs().max() < 1e-4


def test_not_a_seed_state_dict_names_the_keys(tmp_path, seed_checkpoint):
    seed, _, corpus = seed_checkpoint
    state = seed.state_dict()
    del state["blocks.1.ffwd.net.2.bias"]
    state["blocks.0.mystery.weight"] = torch.zeros(3)
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    with pytest.raises(SeedConversionError, match=r"missing keys: blocks.1.ffwd.net.2.bias.*unexpected keys: blocks.0.mystery.weight"):
        convert_seed(path, corpus, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_pickled_model_is_refused_not_unpickled(tmp_path, seed_checkpoint):
    seed, _, corpus = seed_checkpoint
    path = tmp_path / "whole_model.pt"
    torch.save(seed, path)  # the whole module: needs unpickling of arbitrary classes
    result = run_cli("convert-seed", path, "--data", corpus, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "weights_only=True" in result.stderr and "never unpickles" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "corpus_bytes, message",
    [
        (b"", "empty"),
        (b"abc \xff\xfe def", r"not UTF-8 text: byte 4"),
        (b"only a few characters", "distinct characters but the checkpoint's vocabulary has"),
    ],
)
def test_bad_corpus(tmp_path, seed_checkpoint, corpus_bytes, message):
    _, path, _ = seed_checkpoint
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(corpus_bytes)
    result = run_cli("convert-seed", path, "--data", corpus, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert pytest.importorskip("re").search(message, result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_files(tmp_path, seed_checkpoint):
    _, path, corpus = seed_checkpoint
    assert "no such file" in run_cli("convert-seed", tmp_path / "nope.pt", "--data", corpus, "--out", tmp_path / "o").stderr
    assert "no such file" in run_cli("convert-seed", path, "--data", tmp_path / "nope.txt", "--out", tmp_path / "o").stderr
