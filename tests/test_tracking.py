"""--report-to: TensorBoard event files and trackio runs, read back; a missing extra is a one-line error."""

from __future__ import annotations

import sys

import pytest

from tinygpt import tracking, training
from tinygpt.engine import Trainer
from tinygpt.settings import TrainingError, TrainingSettings

SETTINGS = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, learning_rate=0.01,
                threads=1, max_iters=20, eval_interval=10)


@pytest.mark.parametrize("value, targets", [("none", []), ("tensorboard", ["tensorboard"]),
                                            ("trackio, tensorboard", ["trackio", "tensorboard"]),
                                            ("tensorboard trackio tensorboard", ["tensorboard", "trackio"]),
                                            ("all", ["tensorboard", "trackio"])])
def test_report_to_is_parsed_like_transformers(value, targets):
    assert TrainingSettings(report_to=value).report_targets() == targets


def test_unknown_tracker_and_missing_extra_are_one_line(tmp_path, small_text, monkeypatch):
    with pytest.raises(TrainingError, match="unknown 'wandb'; choose from tensorboard, trackio"):
        TrainingSettings(report_to="tensorboard,wandb")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(TrainingError, match=r'--report-to tensorboard needs the tensorboard package: pip install '
                                            r'"tinygpt\[tensorboard\]"'):
        Trainer(TrainingSettings(report_to="tensorboard", **SETTINGS), text=small_text, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_tensorboard_and_trackio_get_losses_rate_samples_and_settings(tmp_path, small_text, monkeypatch):
    pytest.importorskip("tensorboard")
    trackio = pytest.importorskip("trackio")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setattr("trackio.sqlite_storage.TRACKIO_DIR", tmp_path / "trackio")  # its database, for this test
    out = tmp_path / "my-run"
    trainer = Trainer(TrainingSettings(report_to="tensorboard,trackio", **SETTINGS), text=small_text, out_dir=out)
    trainer.train()
    evals = trainer.log_history

    events = EventAccumulator(str(out / tracking.TENSORBOARD_DIR), size_guidance={"tensors": 0}).Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert [s for s, _ in scalars["train/loss"]] == [10, 20]
    assert scalars["train/learning_rate"] == [(10, pytest.approx(0.01)), (20, pytest.approx(0.01))]
    assert scalars["eval/val_loss"] == [(r["step"], pytest.approx(r["val_loss"])) for r in evals]
    texts = {tag: [(e.step, e.tensor_proto.string_val[0].decode()) for e in events.Tensors(tag)]
             for tag in events.Tags()["tensors"]}
    assert [step for step, _ in texts["sample/text_summary"]] == [0, 10, 20]
    assert evals[-1]["sample"].strip() in texts["sample/text_summary"][-1][1]
    assert '"learning_rate": 0.01' in texts["settings/text_summary"][0][1]

    logs = trackio.SQLiteStorage.get_logs("tinygpt", "my-run")
    val = [(entry["step"], entry["eval/val_loss"]) for entry in logs if "eval/val_loss" in entry]
    assert val == [(r["step"], pytest.approx(r["val_loss"])) for r in evals]
    assert [entry["step"] for entry in logs if "train/loss" in entry] == [10, 20]
    samples = [entry["eval/sample"] for entry in logs if "eval/sample" in entry]
    assert samples[-1]["_value"] == [{"step": 20, "sample": evals[-1]["sample"]}]
    config = trackio.SQLiteStorage.get_run_config("tinygpt", "my-run")
    assert config["learning_rate"] == 0.01 and config["n_params"] == trainer.n_params


def test_report_to_stays_out_of_the_reproduce_command(tmp_path):
    settings = TrainingSettings(report_to="tensorboard")
    assert "--report-to" not in settings.to_command("data.txt", "out")
    assert "--report-to WHERE" in training.build_parser().format_help()
