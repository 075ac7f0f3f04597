"""--dataset: local text/json/csv/parquet files (and a Hub dataset) as memory-mapped ids beside the run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from tinygpt import data as data_module
from tinygpt import training
from tinygpt.corpus import CorpusError
from tinygpt.data import PREPARED_DIR, encode_corpus, encode_text
from tinygpt.datasets_source import dataset_corpus
from tinygpt.engine import Trainer
from tinygpt.settings import TrainingSettings
from train_helpers import REPO, child_env, run_train, trainer_state, without_elapsed, write_corpus

pytest.importorskip("datasets")  # the dev extra installs it; without it only the missing-package test applies

ROWS = [{"text": f"row {i}: a quick fox\u00e9, line two", "n": i} for i in range(60)]
TEXT = "".join(row["text"] + "\n" for row in ROWS)  # each row followed by a newline
FLAGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "4",
         "--eval-iters", "2", "--eval-interval", "2", "--threads", "1"]


def write_rows(folder, kind):
    """The same rows as a file of `kind`; a .txt file has one row per line."""
    path = folder / f"rows.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    elif kind == "txt":
        path.write_text(TEXT, encoding="utf-8")
    else:
        import pandas as pd

        frame = pd.DataFrame(ROWS)
        frame.to_csv(path, index=False) if kind == "csv" else frame.to_parquet(path)
    return path


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet", "txt"])
def test_each_file_kind_gives_the_rows_text(tmp_path, kind):
    corpus = dataset_corpus(str(write_rows(tmp_path, kind)), None, "train", "text", tmp_path / "prepared")
    assert isinstance(corpus.ids, np.memmap) and corpus.ids.dtype == np.uint8
    assert "".join(corpus.chars[i] for i in corpus.ids) == TEXT
    assert corpus.chars == sorted(set(TEXT))  # a from-scratch vocabulary: the seed's sorted characters


def test_prepared_once_reused_and_checked(tmp_path, monkeypatch, capsys):
    path = write_rows(tmp_path, "jsonl")
    out = tmp_path / "run"
    args = ["--dataset", str(path), "--out-dir", str(out), *FLAGS]
    assert training.main([*args, "--max-iters", "4"]) == 0
    ids = out / PREPARED_DIR / "ids.bin"
    stamp = ids.stat().st_mtime_ns
    state = trainer_state(out)
    assert "--dataset" in state["command"] and "--data " not in state["command"]
    assert state["data"]["characters"] == len(TEXT)

    # A resumed run reuses the ids without reading the dataset again, and continues exactly.
    monkeypatch.setattr("tinygpt.datasets_source.open_dataset", lambda *a: pytest.fail("the dataset was read again"))
    assert training.main(["--out-dir", str(out), "--resume", "--max-iters", "6"]) == 0
    assert ids.stat().st_mtime_ns == stamp
    monkeypatch.undo()
    assert training.main([*args, "--out-dir", str(tmp_path / "whole"), "--max-iters", "6"]) == 0
    assert without_elapsed(trainer_state(tmp_path / "whole")["log_history"]) == \
        without_elapsed(trainer_state(out)["log_history"])

    # The source changed (a row more): prepared afresh, and a resume of the old run refuses the new vocabulary.
    path.write_text(path.read_text(encoding="utf-8") + json.dumps({"text": "NEW!", "n": 0}) + "\n", encoding="utf-8")
    assert training.main(["--out-dir", str(out), "--resume", "--max-iters", "8"]) == 2
    assert "different set of characters" in capsys.readouterr().err
    assert ids.stat().st_mtime_ns != stamp


def test_bad_datasets_are_one_line(tmp_path, capsys, monkeypatch):
    path = write_rows(tmp_path, "csv")
    out = str(tmp_path / "run")
    cases = [
        (["--dataset", str(path), "--text-column", "body"], "no column 'body'; it has 'text', 'n'"),
        (["--dataset", str(path), "--text-column", "n"], "holds int64 values, not text"),
        (["--dataset", str(path), "--data", str(path)], "not both"),
        (["--dataset-config", "x"], "--dataset-config needs --dataset"),
        (["--dataset", str(tmp_path / "nothing")], "Couldn't find any data file"),
    ]
    (tmp_path / "odd.xml").write_text("<a/>")
    cases.append((["--dataset", str(tmp_path / "odd.xml")], "not a data file this can read"))
    for args, message in cases:
        assert training.main([*args, "--out-dir", out, *FLAGS]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the extra were not installed
    assert training.main(["--dataset", str(path), "--out-dir", out, *FLAGS]) == 2
    assert 'pip install "tinygpt[datasets]"' in capsys.readouterr().err


@pytest.mark.slow
def test_unreadable_datasets_are_one_line_and_nothing_from_the_libraries(tmp_path):
    """An empty file was a 48-line traceback (the json reader's StopIteration); a broken row or a garbage file printed
    the datasets library's own log line before ours; an unreachable Hub dataset printed huggingface_hub's retries.
    One process (the libraries' log handlers write to the real stderr), offline, every case in turn."""
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "broken-row.jsonl").write_text('{"text": "fine"}\n{"text": broken}\n')
    (tmp_path / "garbage.parquet").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "garbage.csv").write_text('a,b\n1,"2\n')
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.jsonl").write_text("")
    (tmp_path / "folder" / "b.jsonl").write_text('{"text": "fine"}\n')
    cases = {
        "empty.txt": "empty.txt: the file is empty (no rows)",
        "empty.jsonl": "empty.jsonl: the file is empty (no rows)",
        "broken-row.jsonl": "broken-row.jsonl: cannot read it: JSON parse error: Invalid value. in row 1",
        "garbage.parquet": "garbage.parquet: Parquet magic bytes not found",
        "garbage.csv": "garbage.csv: cannot read it: Error tokenizing data",
        "folder": "folder: a.jsonl in it is empty (no rows)",
        "nobody/no-such-rows": "nobody/no-such-rows (not a local file or folder either): Couldn't reach "
                               "'nobody/no-such-rows' on the Hub",
    }
    script = textwrap.dedent(f"""
        import sys
        from tinygpt import training
        for name in {list(cases)!r}:
            print("@@", name, file=sys.stderr, flush=True)
            code = training.main(["--dataset", name, "--out-dir", "out", *{FLAGS!r}])
            print("@@ exit", code, file=sys.stderr, flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                            env=child_env(PYTHONPATH=str(REPO), HF_HOME=str(tmp_path / "hf_home")),
                            stdin=subprocess.DEVNULL)
    blocks = result.stderr.split("@@ ")[1:]
    assert result.returncode == 0 and len(blocks) == 2 * len(cases), result.stderr[-3000:]
    for (name, expected), said, ended in zip(cases.items(), blocks[::2], blocks[1::2]):
        lines = said.splitlines()
        assert lines[0] == name and ended.strip() == "exit 2", said + ended
        assert lines[1:] == [lines[1]] and lines[1].startswith("train.py: error: --dataset "), said
        assert expected in lines[1], said
    assert not (tmp_path / "out").exists()


def test_a_large_data_file_is_memory_mapped_with_the_same_batches(tmp_path, monkeypatch):
    path = write_corpus(tmp_path / "words.txt")
    settings = TrainingSettings(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2,
                                max_iters=4, eval_interval=2, threads=1)
    Trainer(settings, data_path=path, out_dir=tmp_path / "memory").train()
    monkeypatch.setattr(data_module, "MEMMAP_MIN_BYTES", 1)
    trainer = Trainer(settings, data_path=path, out_dir=tmp_path / "mapped")
    assert isinstance(trainer.train_data, torch.Tensor)
    assert (tmp_path / "mapped" / PREPARED_DIR / "ids.bin").stat().st_size == len(encode_corpus(path))
    trainer.train()
    assert without_elapsed(trainer_state(tmp_path / "mapped")["log_history"]) == \
        without_elapsed(trainer_state(tmp_path / "memory")["log_history"])


def test_base_characters_keep_their_ids():
    corpus = encode_text("cab!", base_chars=["z", "a"])
    assert corpus.chars == ["z", "a", "!", "b", "c"]
    assert corpus.ids.tolist() == [4, 1, 3, 2]
    with pytest.raises(CorpusError, match="is empty"):
        encode_text("", base_chars=["a"])


@pytest.mark.slow
def test_a_hub_dataset_by_its_id(tmp_path, hub_server):
    from huggingface_hub import HfApi, ModelCard

    api = HfApi(endpoint=hub_server.url, token="hf_test")
    api.create_repo("tester/rows", repo_type="dataset")
    api.upload_file(path_or_fileobj=write_rows(tmp_path, "jsonl"), path_in_repo="data/train.jsonl",
                    repo_id="tester/rows", repo_type="dataset")
    out = tmp_path / "run"
    env = {"HF_ENDPOINT": hub_server.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf_home")}
    result = run_train(["--dataset", "tester/rows", "--out-dir", out, *FLAGS, "--max-iters", "2"], tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    data = trainer_state(out)["data"]
    assert (data["name"], data["path"], data["characters"], data["vocab_size"]) == \
        ("tester/rows", None, len(TEXT), len(set(TEXT)))
    assert ModelCard.load(out / "README.md").data.datasets == ["tester/rows"]
