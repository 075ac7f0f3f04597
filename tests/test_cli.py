"""`tinygpt generate` and the checks that make a bad model folder a one-line error."""

import importlib
import json
import subprocess
import sys
import types

import pytest
import torch

from tinygpt.loading import ModelLoadError, load_pretrained


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "tinygpt.cli", *map(str, args)], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def test_generate_greedy_prints_prompt_and_continuation(model_dir, model, tokenizer):
    result = run_cli("generate", model_dir, "--prompt", "All:", "--max-new-tokens", 50, "--temperature", 0)
    assert result.returncode == 0, result.stderr
    expected = tokenizer.decode(model.generate(**tokenizer("All:", return_tensors="pt"), max_new_tokens=50, do_sample=False)[0])
    assert result.stdout == expected + "\n"
    assert result.stderr == ""  # no progress bars or warnings around the text


def test_generate_with_a_seed_is_repeatable(model_dir):
    runs = [run_cli("generate", model_dir, "--max-new-tokens", 30, "--seed", s, "--top-k", 5).stdout for s in (1, 1, 2)]
    assert runs[0] == runs[1] != runs[2]
    assert len(runs[0]) == 31  # empty prompt: 30 new characters and a newline


def test_generate_names_unknown_characters(model_dir):
    result = run_cli("generate", model_dir, "--prompt", "Hello €")
    assert result.returncode == 2
    assert "'H'" in result.stderr and "'€'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--temperature", "-1"], "temperature"),
    (["--top-p", "0"], "top_p"),
    (["--max-new-tokens", "0"], "max_new_tokens"),
])
def test_generate_rejects_bad_options(model_dir, args, message):
    result = run_cli("generate", model_dir, *args)
    assert result.returncode == 2 and message in result.stderr


def test_missing_folder_and_non_model_folder(tmp_path):
    assert "no such folder" in run_cli("generate", tmp_path / "nope").stderr
    (tmp_path / "empty").mkdir()
    assert "no config.json" in run_cli("generate", tmp_path / "empty").stderr


def test_truncated_weights(model_dir):
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_pretrained(model_dir)


def test_weights_that_do_not_fit_the_config_name_the_tensor(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    config["n_embd"] = 64
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"tensor token_embedding.weight has shape \(\d+, 32\) but config.json needs \(\d+, 64\)"):
        load_pretrained(model_dir)


def test_other_model_type_is_refused(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    config["model_type"] = "gpt2"
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="not a tinygpt model"):
        load_pretrained(model_dir)


def test_loaded_model_is_in_eval_mode_with_matching_tokenizer(model_dir, model):
    loaded, tokenizer = load_pretrained(model_dir)
    assert not loaded.training and len(tokenizer) == loaded.config.vocab_size
    x = torch.randint(0, len(tokenizer), (1, 8))
    assert torch.equal(loaded(x).logits, model(x).logits)


def test_a_damaged_tokenizer_json_is_named(model_dir, tmp_path, capsys):
    """The tokenizers library's own error ("Expecting property name enclosed in double quotes: line 1 column 30")
    names no file: `tinygpt generate`, --init-from and load_pretrained (app.py's check too) name tokenizer.json."""
    from tinygpt import training

    said = "tokenizer.json: not valid JSON (Expecting property name"
    (model_dir / "tokenizer.json").write_text('{"version": "1.0", "model": {garbled')
    result = run_cli("generate", model_dir, "--prompt", "All:")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("tinygpt generate: error: ") and f"{model_dir}/{said}" in result.stderr
    corpus = tmp_path / "new.txt"
    corpus.write_text("All: speak, speak.\n" * 20, encoding="utf-8")
    code = training.main(["--init-from", str(model_dir), "--data", str(corpus), "--out-dir", str(tmp_path / "ft"),
                          "--max-iters", "1", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and said in err, err
    assert not (tmp_path / "ft").exists()
    (model_dir / "tokenizer.json").write_text("{}")  # JSON, but not a tokenizer
    with pytest.raises(ModelLoadError, match=r"tokenizer.json: not a tokenizer this can load"):
        load_pretrained(model_dir)


def test_help_imports_neither_torch_nor_other_subcommands(monkeypatch):
    """`tinygpt --help` took 19 s on a busy machine: the package's import (torch, transformers) and every
    subcommand's. The console script's front door (tinygpt_cli) lists the commands without importing tinygpt; a
    subcommand imports its own module only. Import lists, not timings: see the report for those."""
    import os

    import tinygpt_cli
    from tinygpt import cli
    from tinygpt_cli import COMMANDS

    script = (
        "import contextlib, io, json, sys\n"
        "from tinygpt_cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    code = main(['--help'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'tinygpt'))\n"
        "print(json.dumps({'code': code, 'help': out.getvalue(), 'loaded': loaded}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["code"] == 0 and found["loaded"] == [], found["loaded"]
    monkeypatch.setenv("COLUMNS", "100")
    assert found["help"] == cli.build_parser().format_help()  # what `python -m tinygpt.cli --help` prints

    imported = []  # what the command imports for `tinygpt generate --help`
    recorder = types.SimpleNamespace(import_module=lambda name: imported.append(name) or importlib.import_module(name))
    monkeypatch.setattr(tinygpt_cli, "importlib", recorder)
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    assert imported == [COMMANDS["generate"][0]]
