"""The model card's licence is the user's choice: `unknown` until chosen, `train.py --license`, `tinygpt push
--license`, a licence written by hand into the card's YAML. Every card used to say `license: mit`."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi, ModelCard, hf_hub_download

from tinygpt import cli, training
from tinygpt.card import build_model_card
from tinygpt.model_repo import push_model
from train_helpers import TINY, trainer_state, write_corpus

TOKEN = "hf_local_test_token"


def train(tmp_path, *flags) -> tuple[int, object]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "run"
    code = training.main(["--data", str(write_corpus(tmp_path / "words.txt", words=200)), "--out-dir", str(out),
                          *TINY, "--max-iters", "2", "--eval-interval", "2", *flags])
    return code, out


def test_a_run_declares_unknown_until_a_licence_is_chosen_then_the_chosen_one(tmp_path):
    code, out = train(tmp_path / "plain")
    assert code == 0 and ModelCard.load(out / "README.md").data.license == "unknown"

    code, out = train(tmp_path / "chosen", "--license", "cc-by-sa-4.0")
    assert code == 0
    assert ModelCard.load(out / "README.md").data.license == "cc-by-sa-4.0"
    state = trainer_state(out)
    assert state["training_args"]["license"] == "cc-by-sa-4.0"  # recorded with the run: a resume keeps it
    assert "--license" not in state["command"]  # it does not change the model a reproduce command trains

    # A licence written into the card by hand stays when the run chose none; the run's choice wins over it.
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\nedited\n", encoding="utf-8")
    assert build_model_card(out).data.license == "cc-by-sa-4.0"
    assert build_model_card(out, license="mit").data.license == "mit"


@pytest.mark.parametrize("value", ["MIT", "my licence", "apache_2.0"])
def test_a_licence_that_is_not_a_hub_id_is_one_line(tmp_path, capsys, model_dir, value):
    code, out = train(tmp_path, "--license", value)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--license must be a Hub licence id such as mit" in err, err
    assert not out.exists()
    assert cli.main(["push", str(model_dir), "tester/tiny", "--license", value]) == 2  # before any request
    assert "--license must be a Hub licence id such as mit, apache-2.0, cc-by-4.0, other or unknown" in \
        capsys.readouterr().err


def test_push_carries_the_chosen_licence_and_can_choose_another(tmp_path, hub_server):
    code, out = train(tmp_path, "--license", "apache-2.0")
    assert code == 0
    push_model(out, "tester/licensed", token=TOKEN, endpoint=hub_server.url)
    api = HfApi(endpoint=hub_server.url, token=TOKEN)
    assert api.model_info("tester/licensed").card_data.license == "apache-2.0"
    push_model(out, "tester/licensed", token=TOKEN, endpoint=hub_server.url, license="other")
    card = ModelCard.load(hf_hub_download("tester/licensed", "README.md", endpoint=hub_server.url,
                                          cache_dir=tmp_path / "cache"))
    assert card.data.license == "other"
    assert ModelCard.load(out / "README.md").data.license == "apache-2.0"  # the local folder is not modified
