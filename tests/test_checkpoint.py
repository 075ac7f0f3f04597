"""The bundled checkpoint (checkpoints/tinyshakespeare): what the demo and the README use offline."""

import json
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "tinyshakespeare"
CORPUS = ROOT / "data" / "tinyshakespeare.txt"  # the real corpus: these tests need it


@pytest.fixture(scope="module")
def bundled():
    model = AutoModelForCausalLM.from_pretrained(CHECKPOINT, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT, trust_remote_code=True)
    return model, tokenizer


def test_it_is_small_and_complete():
    names = {p.name for p in CHECKPOINT.iterdir()}
    assert {"config.json", "model.safetensors", "configuration_tinygpt.py", "modeling_tinygpt.py",
            "tokenizer.json", "tokenizer_config.json", "trainer_state.json", "loss.png", "README.md"} <= names
    assert sum(p.stat().st_size for p in CHECKPOINT.iterdir() if p.name != "training_state.pt") < 5_000_000
    state = json.loads((CHECKPOINT / "trainer_state.json").read_text())
    card = (CHECKPOINT / "README.md").read_text()
    assert "python train.py" in card and f"{state['best_val_loss']:.4f}" in card and "Wall time" in card


def test_validation_loss_is_what_the_card_says(bundled):
    """The last 10 % of tiny Shakespeare, the seed's validation split, scored in full block_size windows."""
    model, tokenizer = bundled
    text = CORPUS.read_text(encoding="utf-8")
    val = torch.tensor(tokenizer(text[int(0.9 * len(text)):])["input_ids"])
    block = model.config.block_size
    starts = torch.arange(0, len(val) - block - 1, 97)[:512]
    x = torch.stack([val[s : s + block] for s in starts])
    y = torch.stack([val[s + 1 : s + block + 1] for s in starts])
    with torch.no_grad():
        loss = model(x, shift_labels=y).loss.item()
    recorded = json.loads((CHECKPOINT / "trainer_state.json").read_text())["best_val_loss"]
    assert loss < 1.95 and abs(loss - recorded) < 0.1


def test_it_writes_shakespeare_like_text(bundled):
    model, tokenizer = bundled
    corpus_words = set(re.findall(r"[a-z]+", CORPUS.read_text(encoding="utf-8").lower()))
    torch.manual_seed(0)
    out = model.generate(**tokenizer("ROMEO:\n", return_tensors="pt"), max_new_tokens=400, do_sample=True, top_k=10)
    text = tokenizer.decode(out[0])
    words = re.findall(r"[a-z]+", text.lower())
    known = sum(w in corpus_words for w in words) / len(words)
    assert len(words) > 40 and known > 0.6, text  # mostly real words (random characters would be ~0)
    assert re.search(r"\n[A-Z][A-Za-z ]+:\n", text), text  # a speaker's name on its own line


@pytest.mark.parametrize("name", ["configuration_tinygpt.py", "modeling_tinygpt.py", "tokenization_tinygpt.py"])
def test_its_code_files_are_the_current_ones(name):
    """The demo loads the bundled folder's own copy of the model and tokenizer code; it must be the package's."""
    assert (CHECKPOINT / name).read_text() == (ROOT / "tinygpt" / name).read_text(), (
        f"refresh it: cp tinygpt/{name} checkpoints/tinyshakespeare/"
    )
