"""--init-from: a run that starts from a trained model (a folder or a Hub repo), its vocabulary grown for a new text."""

from __future__ import annotations

import json

import torch
from huggingface_hub import ModelCard, constants
from safetensors.torch import load_file

from tinygpt import training
from tinygpt.engine import Trainer
from tinygpt.loading import load_pretrained
from tinygpt.model_repo import push_model
from tinygpt.publish import ModelCardWriter
from tinygpt.settings import TrainingSettings
from train_helpers import trainer_state

RUN = dict(batch_size=4, eval_iters=2, eval_interval=2, learning_rate=0.01, threads=1, seed=3)
NEW_TEXT = "zebra quartz, 42 jolly vexing wizards\n" * 40  # letters the base (small_text) lacks, and digits
FLAGS = ["--batch-size", "4", "--eval-iters", "2", "--eval-interval", "2", "--threads", "1", "--dropout", "0.1"]


def base_rows(model_dir):
    """The base's characters in id order and its weights."""
    _, tokenizer = load_pretrained(model_dir)
    return tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))), load_file(model_dir / "model.safetensors")


def test_vocabulary_grows_and_the_base_weights_carry_over(tmp_path, model_dir):
    chars, base = base_rows(model_dir)
    out_dir = tmp_path / "ft"
    # The settings' dims (the seed's 2 x 64, block 32) give way to the base's (2 x 32, block 16).
    trainer = Trainer(TrainingSettings(max_iters=0, **RUN), text=NEW_TEXT, out_dir=out_dir, init_from=model_dir,
                      callbacks=[ModelCardWriter()])
    assert (trainer.settings.n_embd, trainer.settings.block_size) == (32, 16)
    trainer.train()

    model, tokenizer = load_pretrained(out_dir)
    new = sorted(set(NEW_TEXT) - set(chars))
    assert tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))) == chars + new  # old ids kept, new appended
    assert tokenizer.decode(tokenizer(NEW_TEXT)["input_ids"]) == NEW_TEXT
    weights = load_file(out_dir / "model.safetensors")
    for name, tensor in base.items():  # step 0: every base tensor unchanged; grown ones keep the base's rows first
        assert torch.equal(weights[name][: tensor.shape[0]], tensor), name
    grown = [n for n in base if weights[n].shape != base[n].shape]
    assert grown and all(weights[n].shape[0] == len(chars) + len(new) for n in grown)
    assert model.config.vocab_size == len(chars) + len(new) and model.config.n_embd == 32

    state = trainer_state(out_dir)
    assert state["training_args"]["init_from"] == str(model_dir)
    assert state["data"]["base_vocab_size"] == len(chars)
    assert f"--init-from {model_dir}" in state["command"] and "--n-embd 32" in state["command"]
    card = ModelCard.load(out_dir / "README.md")
    assert "base_model" not in card.data.to_dict()  # a local folder is not a Hub id
    assert f"Fine-tuned from **{model_dir}**" in card.text and f"plus {len(new)} new character(s)" in card.text


def test_train_py_refuses_other_dims_and_resumes_exactly(tmp_path, model_dir, capsys):
    data = tmp_path / "new.txt"
    data.write_text(NEW_TEXT, encoding="utf-8")
    base = ["--init-from", str(model_dir), "--data", str(data), *FLAGS]
    assert training.main([*base, "--out-dir", str(tmp_path / "x"), "--n-embd", "64", "--n-head", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "n_embd 32" in err and "--n-embd 64 cannot apply" in err
    assert not (tmp_path / "x").exists()

    assert training.main([*base, "--out-dir", str(tmp_path / "whole"), "--max-iters", "6"]) == 0
    assert training.main([*base, "--out-dir", str(tmp_path / "half"), "--max-iters", "2"]) == 0
    # The resumed run does not reload the base: the vocabulary, config and weights come from its own state.
    assert training.main(["--out-dir", str(tmp_path / "half"), "--resume", "--max-iters", "6"]) == 0
    whole, half = (load_file(tmp_path / d / "model.safetensors") for d in ("whole", "half"))
    assert all(torch.equal(whole[k], half[k]) for k in whole)
    assert trainer_state(tmp_path / "whole")["log_history"][-1]["val_loss"] == \
        trainer_state(tmp_path / "half")["log_history"][-1]["val_loss"]
    assert training.main(["--out-dir", str(tmp_path / "half"), "--resume", "--init-from", "other/model"]) == 2
    assert "was started from" in capsys.readouterr().err


def test_from_a_hub_repo_the_card_names_its_base_model(tmp_path, model_dir, hub_server, monkeypatch):
    url = hub_server.url
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    for name, value in {"ENDPOINT": url, "HUGGINGFACE_CO_URL_TEMPLATE": template,
                        "HF_HUB_CACHE": str(tmp_path / "hf_home" / "hub"), "HF_HUB_OFFLINE": False}.items():
        monkeypatch.setattr(constants, name, value)
    push_model(model_dir, "tester/base", token="hf_test", endpoint=url)

    out_dir = tmp_path / "ft"
    Trainer(TrainingSettings(max_iters=2, **RUN), text=NEW_TEXT, out_dir=out_dir, init_from="tester/base",
            callbacks=[ModelCardWriter()]).train()
    card = ModelCard.load(out_dir / "README.md")
    assert card.data.base_model == "tester/base"
    assert "--init-from tester/base" in json.loads((out_dir / "trainer_state.json").read_text())["command"]
