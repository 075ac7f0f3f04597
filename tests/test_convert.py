"""`tinygpt convert-seed`: a state_dict of the blog's GPT becomes a tinygpt folder with the same logits."""

import subprocess
from pathlib import Path
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


def run_in_process(capsys, *args):
    """`tinygpt ARGS` in this process (no interpreter start): (exit code, stdout, stderr)."""
    from tinygpt import cli

    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _not_a_checkpoint(tmp_path, seed_path, case):
    path = tmp_path / f"{case}.pt"
    if case == "hello":
        path.write_bytes(b"hello")
    elif case == "random-bytes":
        path.write_bytes(bytes(torch.randint(0, 256, (1000,), generator=torch.Generator().manual_seed(0)).tolist()))
    elif case == "python-file":
        path = tmp_path / "model.py"
        path.write_text("import torch\n\nmodel = torch.nn.Linear(2, 2)\n")
    elif case == "truncated":
        data = seed_path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "directory":
        path = tmp_path / "a-folder"
        path.mkdir()
    return path


@pytest.mark.parametrize("case, message", [
    ("hello", "not a PyTorch checkpoint: it is a 5-byte text file starting 'hello'"),
    ("random-bytes", "not a PyTorch checkpoint: it is 1,000 bytes of binary data"),
    ("python-file", "not a PyTorch checkpoint: it is a 44-byte text file starting 'import torch'"),
    ("truncated", "is a truncated or damaged zip archive"),
    ("empty", "is empty (0 bytes), not a PyTorch checkpoint"),
    ("directory", "is a folder, not a checkpoint file"),
])
def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, seed_checkpoint, capsys, case, message):
    _, seed_path, corpus = seed_checkpoint
    path = _not_a_checkpoint(tmp_path, seed_path, case)
    code, out, err = run_in_process(capsys, "convert-seed", path, "--data", corpus, "--out", tmp_path / "out")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"tinygpt convert-seed: error: {path}: ")
    assert message in err
    if case != "truncated":  # says what is expected
        assert "torch.save(model.state_dict(), 'seed.pt')" in err
    assert not (tmp_path / "out").exists()


def test_the_issues_hello_file_through_the_installed_command(tmp_path, seed_checkpoint):
    """The report's reproduction, in a real process: a 5-byte text file was a 29-line traceback."""
    _, _, corpus = seed_checkpoint
    (tmp_path / "hello").write_bytes(b"hello")
    result = run_cli("convert-seed", tmp_path / "hello", "--data", corpus, "--out", tmp_path / "out")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"tinygpt convert-seed: error: {tmp_path / 'hello'}: not a PyTorch checkpoint: it is a 5-byte text file "
        "starting 'hello'; convert-seed expects the file written by torch.save(model.state_dict(), 'seed.pt')"
    ]


class _Marker:
    """Unpickling this object creates a file: the proof that something was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_nothing_is_ever_unpickled(tmp_path, seed_checkpoint, capsys):
    import pickle

    _, _, corpus = seed_checkpoint
    marker = tmp_path / "unpickled"
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"weights": _Marker(marker)}))  # a pickle, not a torch.save file
    code, _, err = run_in_process(capsys, "convert-seed", plain, "--data", corpus, "--out", tmp_path / "out")
    assert code == 2 and "it is a plain pickle, which tinygpt never unpickles" in err
    zipped = tmp_path / "zipped.pt"
    torch.save({"weights": _Marker(marker)}, zipped)  # a real torch.save archive with a code-running object
    code, _, err = run_in_process(capsys, "convert-seed", zipped, "--data", corpus, "--out", tmp_path / "out")
    assert code == 2 and "weights_only=True" in err
    assert not marker.exists()


def test_the_legacy_torch_save_format_converts(tmp_path, seed_checkpoint):
    seed, _, corpus = seed_checkpoint
    path = tmp_path / "legacy.pt"
    torch.save(seed.state_dict(), path, _use_new_zipfile_serialization=False)  # torch < 1.6's format
    model, _ = convert_seed(path, corpus, tmp_path / "out")
    x = torch.randint(0, model.config.vocab_size, (1, 10))
    assert (model(x).logits - seed(x)[0].view(1, 10, -1)).abs().max() < 1e-4


# ------------------------------------------------------------------------------------- --out and --overwrite

TRAINED_FILES = {"README.md": "# an old model\n", "trainer_state.json": '{"global_step": 5000}',
                 "loss.png": "not really a plot", "training_state.pt": "resume state", "config.json": "{}"}
CONVERTED_FILES = {"config.json", "generation_config.json", "model.safetensors", "configuration_tinygpt.py",
                   "modeling_tinygpt.py", "tokenization_tinygpt.py", "tokenizer.json", "tokenizer_config.json"}


@pytest.fixture
def trained_folder(tmp_path):
    """A folder as train.py leaves it (contents do not matter: only that they must not survive)."""
    folder = tmp_path / "my-model"
    folder.mkdir()
    for name, text in TRAINED_FILES.items():
        (folder / name).write_text(text)
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_non_empty_out_folder_is_refused_without_overwrite(tmp_path, seed_checkpoint, trained_folder, capsys):
    _, path, corpus = seed_checkpoint
    before = _snapshot(trained_folder)
    code, out, err = run_in_process(capsys, "convert-seed", path, "--data", corpus, "--out", trained_folder)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"--out {trained_folder} is not empty (it holds README.md, config.json, loss.png" in err
    assert "--overwrite" in err
    assert _snapshot(trained_folder) == before
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    code, _, err = run_in_process(capsys, "convert-seed", path, "--data", corpus, "--out", tmp_path / "empty")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "empty").iterdir()} == CONVERTED_FILES


def test_overwrite_replaces_the_whole_folder(tmp_path, seed_checkpoint, trained_folder, capsys):
    seed, path, corpus = seed_checkpoint
    code, out, err = run_in_process(capsys, "convert-seed", path, "--data", corpus, "--out", trained_folder,
                                    "--overwrite")
    assert code == 0, err
    assert {p.name for p in trained_folder.iterdir()} == CONVERTED_FILES  # no stale card, state, plot, resume
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left behind
    model, tokenizer = load_pretrained(trained_folder)
    x = torch.randint(0, model.config.vocab_size, (1, 10))
    assert (model(x).logits - seed(x)[0].view(1, 10, -1)).abs().max() < 1e-4


def test_files_have_the_permissions_train_py_gives(tmp_path, seed_checkpoint, monkeypatch):
    """Same umask-respecting modes as tinygpt.checkpoint.write_checkpoint (safetensors alone creates 0600)."""
    import os

    from tinygpt.checkpoint import write_checkpoint

    _, path, corpus = seed_checkpoint
    previous = os.umask(0o022)
    try:
        model, tokenizer = convert_seed(path, corpus, tmp_path / "converted")
        trained = tmp_path / "trained"
        trained.mkdir()
        write_checkpoint(trained, lambda d: (model.save_pretrained(d), tokenizer.save_pretrained(d)))
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "converted").iterdir()}
    assert modes == {p.name: p.stat().st_mode & 0o777 for p in trained.iterdir()}
    assert set(modes.values()) == {0o644}
    assert (tmp_path / "converted").stat().st_mode & 0o777 == 0o755


def test_a_failed_write_leaves_the_old_folder(tmp_path, seed_checkpoint, trained_folder, monkeypatch):
    from tinygpt import CharTokenizer

    _, path, corpus = seed_checkpoint
    before = _snapshot(trained_folder)

    def disk_full(self, folder, *args, **kwargs):
        (Path(folder) / "tokenizer.json").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CharTokenizer, "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space left"):
        convert_seed(path, corpus, trained_folder, overwrite=True)
    assert _snapshot(trained_folder) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_never_deletes_the_inputs(tmp_path, seed_checkpoint, capsys):
    _, path, corpus = seed_checkpoint  # both in tmp_path
    code, _, err = run_in_process(capsys, "convert-seed", path, "--data", corpus, "--out", tmp_path, "--overwrite")
    assert code == 2 and "which --overwrite would delete" in err
    assert path.is_file() and corpus.is_file()


@pytest.mark.parametrize(("key", "shape", "message"), [
    ("blocks.1.sa.heads.2.key.weight", (15, 48), "tensor blocks.1.sa.heads.2.key.weight has shape (15, 48), "
                                                 "expected (16, 48)"),
    ("blocks.0.ffwd.net.0.weight", (100, 48), "tensor blocks.0.ffwd.net.0.weight has shape (100, 48), "
                                              "expected (192, 48)"),
    ("head.bias", (7,), "tensor head.bias has shape (7,), expected ("),
    ("token_embedding.weight", (48,), "tensor token_embedding.weight has shape (48,), expected 2 dimensions"),
    ("position_embedding.weight", (24, 40), "tensor position_embedding.weight has shape (24, 40), expected "
                                            "(block_size, 48)"),
])
def test_a_tensor_of_the_wrong_shape_is_named_in_one_line(tmp_path, seed_checkpoint, capsys, key, shape, message):
    seed, _, corpus = seed_checkpoint
    state = seed.state_dict()
    state[key] = torch.zeros(shape)
    path = tmp_path / "odd.pt"
    torch.save(state, path)
    code, out, err = run_in_process(capsys, "convert-seed", path, "--data", corpus, "--out", tmp_path / "out")
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "Traceback" not in err
    assert message in err
    assert not (tmp_path / "out").exists()


def test_a_full_disk_is_one_line_and_leaves_the_old_folder(tmp_path, seed_checkpoint, trained_folder, monkeypatch,
                                                           capsys):
    """What safetensors raises on a full disk (not an OSError) is said as one, and nothing changes."""
    from safetensors import SafetensorError

    def disk_full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    _, path, corpus = seed_checkpoint
    before = _snapshot(trained_folder)
    monkeypatch.setattr("transformers.modeling_utils.safe_save_file", disk_full)
    code, _, err = run_in_process(capsys, "convert-seed", path, "--data", corpus, "--out", trained_folder,
                                  "--overwrite")
    assert code == 2 and err.splitlines() == [
        f"tinygpt convert-seed: error: could not write {trained_folder} (disk full: No space left on device); the "
        "old folder is intact"]
    assert _snapshot(trained_folder) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_usage_errors_are_one_line(capsys):
    from tinygpt import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["convert-seed", "seed.pt", "--data", "x.txt", "--out", "o", "--attn-scale", "foo"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("tinygpt convert-seed: error: argument --attn-scale: invalid choice: 'foo'")
