"""`tinygpt generate` and the checks that make a bad model folder a one-line error."""

import json
import subprocess
import sys

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


@pytest.mark.parametrize("damage, said", [
    ('{"version": "1.0", "model": {garbled', "tokenizer.json: not valid JSON (Expecting property name"),
    ("{}", "tokenizer.json: not a tokenizer this can load"),
], ids=["garbled", "not-a-tokenizer"])
def test_a_damaged_tokenizer_json_is_named(model_dir, tmp_path, capsys, damage, said):
    """The tokenizers library's own error ("Expecting property name enclosed in double quotes: line 1 column 30")
    names no file: `tinygpt generate`, --init-from and load_pretrained (app.py's check too) name tokenizer.json."""
    from tinygpt import training

    (model_dir / "tokenizer.json").write_text(damage)
    result = run_cli("generate", model_dir, "--prompt", "All:")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("tinygpt generate: error: ") and f"{model_dir}/{said}" in result.stderr
    with pytest.raises(ModelLoadError, match=said.replace("(", r"\(")):
        load_pretrained(model_dir)
    corpus = tmp_path / "new.txt"
    corpus.write_text("All: speak, speak.\n" * 20, encoding="utf-8")
    code = training.main(["--init-from", str(model_dir), "--data", str(corpus), "--out-dir", str(tmp_path / "ft"),
                          "--max-iters", "1", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and said in err, err
    assert not (tmp_path / "ft").exists()


def test_help_imports_neither_torch_nor_other_subcommands():
    """`tinygpt --help` took 19 s on a busy machine: the package's import (torch, transformers) and every
    subcommand's. The console script's front door (tinygpt_cli) lists the commands without importing tinygpt; a
    subcommand imports its own module only. Import lists, not timings: see the report for those."""
    script = (
        "import contextlib, io, json, sys\n"
        "from tinygpt_cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    code = main(['--help'])\n"
        "top = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'tinygpt'))\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['generate', '--help'])\n"
        "sub = sorted(m for m in sys.modules if m.startswith('tinygpt.'))\n"
        "print(json.dumps({'code': code, 'help': out.getvalue(), 'top': top, 'sub': sub}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["code"] == 0 and found["top"] == [], found["top"]
    from tinygpt_cli import COMMANDS

    assert all(f"    {name}" in found["help"] for name in COMMANDS), found["help"]
    others = {module for name, (module, _) in COMMANDS.items() if name != "generate"}
    assert "tinygpt.generate" in found["sub"] and not others & set(found["sub"]), found["sub"]
    assert found["help"] == run_cli("--help").stdout  # the same help as `python -m tinygpt.cli --help`
