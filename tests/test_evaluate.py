"""`tinygpt evaluate` (loss and bits per character on a held-out text) and lm-evaluation-harness on a tinygpt folder."""

import json
import math
from pathlib import Path

import pytest
import torch

from tinygpt.cli import main
from tinygpt.evaluate import evaluate_ids, evaluate_text, held_out_part

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "tinyshakespeare"


def brute_force_loss(model, ids: list[int]) -> float:
    """Mean -log p(character) over ids[1:], each predicted on its own from the start of its window."""
    block_size = model.config.block_size
    full = (len(ids) - 1) // block_size * block_size  # positions 1..full: consecutive windows
    total = 0.0
    with torch.no_grad():
        for j in range(1, len(ids)):
            # the start of the window that predicts position j; past the full windows, the last block_size characters
            start = (j - 1) // block_size * block_size if j <= full else max(0, len(ids) - 1 - block_size)
            logits = model(input_ids=torch.tensor([ids[start:j]])).logits[0, -1]
            total -= torch.log_softmax(logits.double(), -1)[ids[j]].item()
    return total / (len(ids) - 1)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_loss_is_every_character_predicted_from_its_window(model, tokenizer, small_text, batch_size):
    text = small_text[:100]  # 99 predictions: six full windows of 16 and one of 3
    result = evaluate_text(model, tokenizer, text, batch_size=batch_size)
    assert (result.characters, result.windows) == (99, 7)
    assert result.loss == pytest.approx(brute_force_loss(model, tokenizer(text)["input_ids"]), abs=1e-5)
    assert result.bits_per_character == pytest.approx(result.loss / math.log(2))


def test_held_out_parts(small_text):
    assert held_out_part(small_text, "all") == small_text
    cut = int(0.9 * len(small_text))  # the seed's split, as train.py makes it
    assert held_out_part(small_text, "val") == small_text[cut:]
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_ids(None, torch.tensor([3]))


def test_the_bundled_model_on_its_validation_part_matches_its_card(capsys):
    """Over the whole val part, the loss is the one train.py estimated from random windows (within noise)."""
    assert main(["evaluate", str(CHECKPOINT), str(ROOT / "data" / "tinyshakespeare.txt"), "--split", "val"]) == 0
    out = capsys.readouterr().out
    loss, bpc = (float(x) for x in
                 (out.split("loss ")[1].split()[0], out.split("nats per character, ")[1].split()[0]))
    state = json.loads((CHECKPOINT / "trainer_state.json").read_text())
    assert loss == pytest.approx(state["log_history"][-1]["val_loss"], abs=0.03)
    assert bpc == pytest.approx(loss / math.log(2), abs=1e-4)
    assert "111,539 characters predicted" in out  # all of the last 10 % but its first character


@pytest.mark.parametrize("content, args, message", [
    (None, [], "no such file"),
    ("All: Zebra €\n", [], "3 character(s) not in the model's vocabulary: 'Z', 'b', '€'"),
    ("A", [], "too short"),
    ("Speak.", ["--split", "val"], "(the last 10 %, the seed's validation part): 1 character(s) is too short"),
    (b"\xff\xfeAll", [], "not UTF-8"),
])
def test_bad_texts_are_one_line(model_dir, tmp_path, capsys, content, args, message):
    path = tmp_path / "held-out.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["evaluate", str(model_dir), str(path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_a_repo_id_on_an_unreachable_hub_is_one_line(command, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))  # and no cached copy
    text = tmp_path / "text.txt"
    text.write_text("some text\n", encoding="utf-8")
    assert main([command, "no-such-model", *([str(text)] if command == "evaluate" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tinygpt {command}: error: no-such-model: no such folder, and no such repo reachable "
                          "on the Hub (http://127.0.0.1:9: ")
    assert len(err.splitlines()) == 1


# ----------------------------------------------------------------------------------- lm-evaluation-harness


def write_task(folder: Path, docs: list[str]) -> None:
    """Two local tasks on the same documents: rolling log-likelihood (perplexity) and generation."""
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": d, "prompt": d[:12]}) + "\n" for d in docs), encoding="utf-8")
    common = {"dataset_path": "json", "test_split": "test", "metadata": {"version": 1.0},
              "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(folder / "cache")}}
    rolling = {**common, "task": "tiny_rolling", "output_type": "loglikelihood_rolling", "doc_to_text": "",
               "doc_to_target": "{{text}}", "metric_list": [{"metric": "bits_per_byte"}]}
    generation = {**common, "task": "tiny_generation", "output_type": "generate_until", "doc_to_text": "{{prompt}}",
                  "doc_to_target": "{{text}}", "generation_kwargs": {"max_gen_toks": 8, "do_sample": False},
                  "metric_list": [{"metric": "exact_match"}]}
    for task in (rolling, generation):  # JSON is YAML
        (folder / f"{task['task']}.yaml").write_text(json.dumps(task), encoding="utf-8")


@pytest.mark.slow
def test_lm_evaluation_harness_hf_model_on_a_tinygpt_folder(model_dir, model, tokenizer, small_text, tmp_path):
    """`lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True` needs nothing more: the tokenizer's
    BOS (its first character, "\\n" here) starts each text, and its bits per byte are `tinygpt evaluate`'s numbers."""
    lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness is the optional `eval` extra")
    from lm_eval.tasks import TaskManager

    docs = [p.strip() for p in small_text.split("\n\n")]  # (a Jinja template drops a final newline)
    write_task(tmp_path, docs)
    results = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": str(model_dir), "trust_remote_code": True}, device="cpu",
        tasks=["tiny_rolling", "tiny_generation"], task_manager=TaskManager(include_path=str(tmp_path)),
    )["results"]

    nats = sum(evaluate_text(model, tokenizer, "\n" + d).loss * len(d) for d in docs)  # each doc after "\n"
    assert results["tiny_rolling"]["bits_per_byte,none"] == pytest.approx(
        nats / math.log(2) / sum(len(d.encode()) for d in docs), rel=1e-4)
    assert "exact_match,none" in results["tiny_generation"]  # generation ran (greedy, stopped at the EOS "\n")
