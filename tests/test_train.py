"""train.py's machinery, in process: settings and presets, data, the loop, checkpoints, exact resume, refusals.

The command-line behaviour that needs real processes (signals, SIGKILL, torchrun, loading without tinygpt)
is in test_train_cli.py.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import shutil
import signal
import tracemalloc

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from tinygpt import char_tokenizer  # noqa: E402
from tinygpt import checkpoint, engine, training  # noqa: E402
from tinygpt.corpus import read_corpus  # noqa: E402
from tinygpt.data import encode_corpus, get_batch, id_dtype  # noqa: E402
from tinygpt.loading import load_pretrained  # noqa: E402
from tinygpt.settings import TrainingSettings  # noqa: E402
from train_helpers import TINY, folder_digest, train, trainer_state, without_elapsed  # noqa: E402

MODEL_FILES = {
    "config.json", "model.safetensors", "configuration_tinygpt.py", "modeling_tinygpt.py",
    "tokenizer.json", "tokenizer_config.json",
}


# `corpus` and `trained` (20 steps, checkpointed at 0, 10 and 20) are tests/conftest.py's, shared with test_faults.py.


# ----------------------------------------------------------------------------------------------- settings


def test_no_arguments_means_the_seed_recipe_on_tiny_shakespeare():
    given = vars(training.build_parser().parse_args([]))
    assert given == {}  # nothing given: defaults are applied in one place, TrainingSettings
    settings = TrainingSettings.resolve(given)
    assert settings == TrainingSettings() == dataclasses.replace(TrainingSettings.from_preset("seed"), preset=None)
    assert {k: getattr(settings, k) for k in ("batch_size", "block_size", "n_embd", "n_head", "n_layer", "dropout",
                                              "learning_rate", "max_iters", "eval_interval", "eval_iters")} == {
        "batch_size": 16, "block_size": 32, "n_embd": 64, "n_head": 4, "n_layer": 2, "dropout": 0.0,
        "learning_rate": 1e-3, "max_iters": 3000, "eval_interval": 300, "eval_iters": 200,
    }
    assert settings.lr_schedule == "constant" and settings.weight_decay == 0.01  # torch AdamW's default
    assert settings.max_seconds is None
    assert training.default_data_path().is_file()


@pytest.mark.parametrize("preset", TrainingSettings.list_presets())
def test_presets_parse_and_explicit_flags_win(preset):
    given = vars(training.build_parser().parse_args(["--preset", preset, "--batch-size", "7", "--max-iters", "9"]))
    settings = TrainingSettings.resolve(given)
    for key, value in TrainingSettings.PRESETS[preset].items():
        if key not in ("batch_size", "max_iters"):
            assert getattr(settings, key) == value, key
    assert settings.batch_size == 7 and settings.max_iters == 9 and settings.preset == preset
    settings.model_config(vocab_size=65)  # every preset is a valid model


def test_cpu_preset_has_its_own_schedule_horizon():
    cpu = TrainingSettings.from_preset("cpu")
    longer = TrainingSettings.from_preset("cpu", max_iters=4 * cpu.max_iters)
    assert longer.lr_decay_iters == cpu.lr_decay_iters  # never derived from --max-iters


def test_saved_settings_sit_between_preset_and_flags():
    saved = TrainingSettings.from_preset("cpu", learning_rate=3e-3).to_dict()
    resumed = TrainingSettings.resolve({"max_iters": 5000}, saved=saved)
    assert resumed.learning_rate == 3e-3 and resumed.preset == "cpu" and resumed.max_iters == 5000


def test_learning_rate_schedule():
    s = TrainingSettings(learning_rate=1.0, warmup_iters=4, lr_schedule="cosine", lr_decay_iters=104, min_lr=0.1)
    assert [s.learning_rate_at(i) for i in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert s.learning_rate_at(4) == pytest.approx(1.0)
    assert s.learning_rate_at(54) == pytest.approx(0.55)  # halfway down the cosine
    assert s.learning_rate_at(104) == s.learning_rate_at(10_000) == pytest.approx(0.1)
    constant = TrainingSettings()
    assert {constant.learning_rate_at(i) for i in (0, 1, 5000)} == {1e-3}


@pytest.mark.parametrize("preset", TrainingSettings.list_presets())
def test_the_schedule_keeps_its_numbers(preset):
    """The rates torch's LambdaLR sets (lr_schedule.py) are those of the schedule written into the optimizer by hand
    before it (here as it was), to within 2 units in the last place, past the decay horizon too."""
    s = TrainingSettings.from_preset(preset)

    def before(step):
        peak = s.learning_rate
        if step < s.warmup_iters:
            return peak * (step + 1) / (s.warmup_iters + 1)
        if s.lr_schedule == "constant":
            return peak
        floor = s.min_lr if s.min_lr is not None else peak / 10
        if step >= s.lr_decay_iters:
            return floor
        progress = (step - s.warmup_iters) / (s.lr_decay_iters - s.warmup_iters)
        return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)

    steps = range(s.max_iters + 500)
    assert [s.learning_rate_at(i) for i in steps] == pytest.approx([before(i) for i in steps], rel=5e-16, abs=0)


def test_flags_come_from_the_settings_through_hf_argument_parser():
    """train.py's parser is transformers' HfArgumentParser over the settings' fields: one hyphenated flag per field
    (none spelt with underscores), each in its help group; switches work bare."""
    from transformers import HfArgumentParser

    parser = training.build_parser()
    assert isinstance(parser, HfArgumentParser)
    flags = {option for action in parser._actions for option in action.option_strings}
    fields = [f.name for f in dataclasses.fields(TrainingSettings)] + list(training.RUN_OPTIONS)
    assert {"--" + name.replace("_", "-") for name in fields} | {"-h", "--help"} == flags
    help = parser.format_help()
    assert "model (the seed's names):\n  --n-layer N" in help and "Hugging Face Hub:\n  --push-to-hub REPO_ID" in help
    given = vars(parser.parse_args(["--resume", "--compile", "--max-iters", "5", "--lr-schedule", "cosine"]))
    assert given == {"resume": True, "compile": True, "max_iters": 5, "lr_schedule": "cosine"}


def test_reproduce_command_names_only_what_differs():
    s = TrainingSettings.from_preset("cpu", max_iters=10, threads=2)
    assert s.to_command("my text.txt", "out", 1) == (
        "python train.py --data 'my text.txt' --out-dir out --preset cpu --max-iters 10 --threads 2"
    )
    assert TrainingSettings().to_command("a.txt", "o", 2).startswith(
        "torchrun --nproc-per-node 2 train.py --data a.txt --out-dir o"
    )


# ----------------------------------------------------------------------------------------------- data


def test_encoding_is_the_seed_tokenizer_and_one_byte_per_character(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text("Grüße, 世界! " * 50 + "ROMEO:\nO, 𝄞 music.\n", encoding="utf-8")
    text = read_corpus(path)
    for chunk_bytes in (1, 3, 7, 1 << 20):  # pieces that cut multi-byte characters in half
        corpus = encode_corpus(path, chunk_bytes=chunk_bytes)
        assert corpus.chars == sorted(set(text))
        assert corpus.ids.dtype == np.uint8
        assert corpus.ids.tolist() == char_tokenizer(text)(text)["input_ids"]
    train, val = corpus.split()
    assert len(train) == int(0.9 * len(text)) and len(train) + len(val) == len(text)


def test_streamed_reading_reports_the_same_byte_offset(tmp_path):
    from tinygpt.corpus import CorpusError, iter_corpus

    path = tmp_path / "bad.txt"
    path.write_bytes("naïve café ".encode() * 7 + b"\xff tail")
    with pytest.raises(CorpusError) as whole:
        read_corpus(path)
    for chunk_bytes in (1, 2, 5, 64):
        with pytest.raises(CorpusError) as streamed:
            list(iter_corpus(path, chunk_bytes))
        assert str(streamed.value) == str(whole.value)
    assert "byte 91 (0xff)" in str(whole.value)


def test_large_vocabularies_get_wider_ids():
    assert id_dtype(256) == np.uint8 and id_dtype(257) == np.int16 and id_dtype(40_000) == np.int32


def test_encoding_is_memory_lean(tmp_path):
    """20 MB of text must not become 20 M Python ints (the seed's way would need over 500 MB)."""
    path = tmp_path / "big.txt"
    block = ("To be, or not to be, that is the question:\n" * 2000).encode()
    with path.open("wb") as f:
        for _ in range(20_000_000 // len(block)):
            f.write(block)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        corpus = encode_corpus(path, chunk_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(corpus) == size and corpus.ids.nbytes == size
    assert peak < size + 40_000_000, f"peak {peak / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"


def test_batches_are_the_seed_windows_from_a_dedicated_generator():
    data = torch.arange(100, dtype=torch.uint8)
    state = torch.get_rng_state()
    x, y = get_batch(data, 8, 5, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)  # the global stream (dropout) is untouched
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    x2, _ = get_batch(data, 8, 5, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(x, x2)


# ----------------------------------------------------------------------------------------------- a run


def test_loss_goes_down_and_the_folder_is_complete(trained):
    state = trainer_state(trained)
    log = state["log_history"]
    assert [e["step"] for e in log] == [0, 10, 20]
    assert log[-1]["val_loss"] < log[0]["val_loss"] - 0.5
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 0.5
    names = {p.name for p in trained.iterdir()}
    assert MODEL_FILES | {"trainer_state.json", "loss.png", "README.md", "training_state.pt"} <= names
    assert not any(name.startswith(".tmp") for name in names)
    model, tokenizer = load_pretrained(trained)
    assert model.config.n_embd == 16 and len(tokenizer) == state["data"]["vocab_size"]


def test_trainer_state_schema(trained, corpus):
    state = trainer_state(trained)
    assert state["global_step"] == 20 and state["max_steps"] == 20 and state["num_processes"] == 1
    assert state["best_val_loss"] == min(e["val_loss"] for e in state["log_history"])
    for entry in state["log_history"]:
        assert set(entry) == {"step", "train_loss", "val_loss", "lr", "elapsed_s", "sample"}
        assert all(isinstance(entry[k], (int, float)) for k in entry if k != "sample")
        assert isinstance(entry["sample"], str) and len(entry["sample"]) > 100  # 300 characters from a newline
    elapsed = [e["elapsed_s"] for e in state["log_history"]]
    assert elapsed == sorted(elapsed)
    args = state["training_args"]
    assert {f.name for f in dataclasses.fields(TrainingSettings)} <= set(args)
    assert TrainingSettings.from_dict(args) == TrainingSettings.resolve(
        {k: v for k, v in vars(training.build_parser().parse_args(state["command"].split()[2:])).items()
         if k not in training.RUN_OPTIONS})
    assert state["n_params"] == sum(p.numel() for p in load_pretrained(trained)[0].parameters())
    assert args["n_embd"] == 16 and args["max_iters"] == 20 and args["eval_interval"] == 10
    assert state["data"] == {"name": corpus.name, "path": str(corpus), "characters": len(read_corpus(corpus)),
                             "vocab_size": len(set(read_corpus(corpus))), "val_repeats_train": 0.0}
    assert state["status"] == "finished" and state["warnings"] == []
    assert state["best_step"] == min(state["log_history"], key=lambda e: e["val_loss"])["step"]
    assert state["model_step"] == 20  # train.py keeps the last weights by default (--keep last)


def test_model_card_reports_the_run(trained, corpus):
    card = (trained / "README.md").read_text(encoding="utf-8")
    state = trainer_state(trained)
    assert "pipeline_tag: text-generation" in card and "library_name: transformers" in card
    assert f"{state['best_val_loss']:.4f}" in card
    assert "![training and validation loss](loss.png)" in card and "## A sample" in card
    assert f"python train.py --data {corpus} --out-dir {trained}" in card and "--max-iters 20" in card
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_state_loads_with_weights_only(trained):
    state = torch.load(trained / checkpoint.TRAINING_STATE_NAME, weights_only=True)
    assert state["step"] == 20 and len(state["rng"]) == 1
    assert set(state["rng"][0]) == {"sampler", "cpu"}
    assert all(isinstance(v, torch.Tensor) for v in state["rng"][0].values())
    assert state["log_history"] == trainer_state(trained)["log_history"]


def test_resume_is_exact(tmp_path, capsys, corpus):
    """100 steps, then resumed to 300, equals 300 straight steps: weights and log (dropout on, so RNG matters)."""
    common = ["--data", corpus, *TINY, "--dropout", "0.1", "--eval-interval", "50"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(capsys, *common, "--out-dir", straight, "--max-iters", 300)[0] == 0
    assert train(capsys, *common, "--out-dir", split, "--max-iters", 100)[0] == 0
    code, out, _ = train(capsys, "--out-dir", split, "--resume", "--max-iters", 300)  # settings come from the folder
    assert code == 0 and "steps 100 -> 300" in out
    a, _ = load_pretrained(straight)
    b, _ = load_pretrained(split)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert (pa - pb).abs().max() < 1e-5, name
    log_a, log_b = trainer_state(straight)["log_history"], trainer_state(split)["log_history"]
    assert without_elapsed(log_a) == without_elapsed(log_b)
    assert [e["step"] for e in log_b] == [0, 50, 100, 150, 200, 250, 300]


def test_resume_is_exact_when_keeping_the_best_model(tmp_path, capsys, corpus, monkeypatch):
    """--keep best: model.safetensors is the best evaluation's weights, training_state.pt the latest; a run split
    in two ends with the same files as a straight one (val losses scripted so that the best is not the last)."""
    val = {0: 3.0, 2: 2.0, 4: 2.5, 6: 2.6, 8: 2.7}

    def scripted(self):
        return 1.0, val[self.step]

    monkeypatch.setattr(engine.Trainer, "estimate_loss", scripted)
    common = ["--data", corpus, *TINY, "--dropout", "0.1", "--eval-interval", "2", "--keep", "best"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(capsys, *common, "--out-dir", straight, "--max-iters", 8)[0] == 0
    assert train(capsys, *common, "--out-dir", split, "--max-iters", 4)[0] == 0
    assert checkpoint.load_training_state(split)["best_model_step"] == 2  # the best, kept aside in the resume state
    assert train(capsys, "--out-dir", split, "--resume", "--max-iters", 8)[0] == 0
    for folder in (straight, split):
        state = trainer_state(folder)
        assert (state["best_step"], state["model_step"], state["global_step"]) == (2, 2, 8)
    a, b = load_pretrained(straight)[0].state_dict(), load_pretrained(split)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    last_a, last_b = (checkpoint.load_training_state(f)["model"] for f in (straight, split))
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    assert not all(torch.equal(a[k], last_a[k]) for k in a)  # the folder's model is not the last step's


def test_sigint_saves_the_current_step_and_exits_0(tmp_path, capsys, corpus, monkeypatch):
    original = engine.Trainer.train_step

    def interrupted_at_7(self, step):
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)  # delivered to the handler before the next step
        return original(self, step)

    monkeypatch.setattr(engine.Trainer, "train_step", interrupted_at_7)
    out_dir = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # not always Python's default: a background shell ignores SIGINT
    code, out, _ = train(capsys, "--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 50)
    assert code == 0
    assert "stopped by SIGINT at step 8" in out and f"train.py --out-dir {out_dir} --resume" in out
    assert trainer_state(out_dir)["global_step"] == 8
    assert checkpoint.load_training_state(out_dir)["step"] == 8
    assert signal.getsignal(signal.SIGINT) is before  # the handler train.py installed is gone again


@pytest.mark.timeout(90)  # 10 million steps: were --max-seconds broken, this would run for hours
def test_max_seconds_saves_and_says_how_to_continue(tmp_path, capsys, corpus):
    out_dir = tmp_path / "run"
    code, out, _ = train(capsys, "--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 10_000_000,
                         "--eval-interval", 1_000_000, "--max-seconds", 1)
    step = trainer_state(out_dir)["global_step"]
    assert code == 0 and 0 < step < 10_000_000
    assert f"time limit (--max-seconds 1) reached: step {step}, train " in out
    assert f"train.py --out-dir {out_dir} --resume --max-seconds SECONDS" in out
    assert [e["step"] for e in trainer_state(out_dir)["log_history"]] == [0, step]  # the final model is evaluated
    assert trainer_state(out_dir)["training_args"]["max_seconds"] == 1


# ----------------------------------------------------------------------------------------------- checkpoints


def test_disk_full_keeps_the_previous_checkpoint(trained, tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "run"
    shutil.copytree(trained, out_dir)
    before = folder_digest(out_dir)

    def no_space(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "fsync_file", no_space)
    code, out, err = train(capsys, "--out-dir", out_dir, "--resume", "--max-iters", 30)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "disk full" in err and "step 20" in err and "intact" in err
    assert folder_digest(out_dir) == before
    assert not (out_dir / checkpoint.STAGING_NAME).exists()
    monkeypatch.undo()
    assert train(capsys, "--out-dir", out_dir, "--resume", "--max-iters", 30)[0] == 0  # after freeing space
    assert trainer_state(out_dir)["global_step"] == 30


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no handler cleans up."""


@pytest.mark.parametrize("files_moved", range(11))  # a checkpoint is 11 files
def test_a_crash_between_any_two_file_replacements_leaves_a_loadable_resumable_folder(
    trained, tmp_path, capsys, monkeypatch, files_moved
):
    out_dir = tmp_path / "run"
    shutil.copytree(trained, out_dir)
    real_replace = os.replace
    moved = []

    def replace_then_crash(src, dst):
        if len(moved) == files_moved:
            raise Crash
        real_replace(src, dst)
        moved.append(os.path.basename(dst))

    monkeypatch.setattr(checkpoint.os, "replace", replace_then_crash)
    with pytest.raises(Crash):
        training.main(["--out-dir", str(out_dir), "--resume", "--max-iters", "21"])  # 1 step, then save
    monkeypatch.undo()
    capsys.readouterr()
    assert (out_dir / checkpoint.STAGING_NAME).is_dir()  # killed mid-save
    load_pretrained(out_dir)  # config, weights, tokenizer: whole files, from one step or the next
    step = checkpoint.load_training_state(out_dir)["step"]
    assert step == (21 if "training_state.pt" in moved else 20)
    assert train(capsys, "--out-dir", out_dir, "--resume", "--max-iters", 22)[0] == 0
    assert trainer_state(out_dir)["global_step"] == 22
    assert not (out_dir / checkpoint.STAGING_NAME).exists()


# ----------------------------------------------------------------------------------------------- refusals


def test_out_dir_holding_a_model_is_never_overwritten_silently(trained, tmp_path, capsys, corpus):
    out_dir = tmp_path / "run"
    shutil.copytree(trained, out_dir)
    before = folder_digest(out_dir)
    code, _, err = train(capsys, "--data", corpus, "--out-dir", out_dir, *TINY, "--n-embd", 32, "--max-iters", 5)
    assert code == 2 and "already holds a model (step 20)" in err and "--overwrite" in err and "--resume" in err
    assert folder_digest(out_dir) == before
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = train(capsys, "--data", empty, "--out-dir", out_dir, *TINY, "--overwrite")
    assert code == 2 and folder_digest(out_dir) == before  # --overwrite acts only once the new run is saved
    code, _, _ = train(capsys, "--data", corpus, "--out-dir", out_dir, *TINY, "--n-embd", 32, "--max-iters", 5,
                       "--eval-interval", 5, "--overwrite")
    assert code == 0
    assert load_pretrained(out_dir)[0].config.n_embd == 32 and trainer_state(out_dir)["global_step"] == 5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n-embd", "32"], "--n-embd 32 (saved: 16)"),
        (["--n-layer", "2", "--block-size", "16"], "--n-layer 2 (saved: 1), --block-size 16 (saved: 8)"),
        # the preset brings dimensions no flag named (this was an uncaught KeyError)
        (["--preset", "seed"], "--n-layer 2 (from --preset seed) (saved: 1), --n-head 4 (from --preset seed) "
                               "(saved: 2), --n-embd 64 (from --preset seed) (saved: 16)"),
    ],
)
def test_resume_refuses_different_dims(trained, capsys, flags, message):
    before = folder_digest(trained)
    code, _, err = train(capsys, "--out-dir", trained, "--resume", "--max-iters", 30, *flags)
    assert code == 2 and message in err and "different dimensions" in err and err.count("\n") == 1
    assert folder_digest(trained) == before


def test_resume_a_text_given_in_memory_from_its_train_txt(tmp_path, capsys, corpus):
    """The demo trains on a text in memory; the folder keeps it as train.txt, so --resume needs no --data."""
    out_dir = tmp_path / "run"
    text = corpus.read_text(encoding="utf-8")
    settings = TrainingSettings(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, threads=1,
                                max_iters=4)
    engine.Trainer(settings, text=text, out_dir=out_dir).train()
    code, out, _ = train(capsys, "--out-dir", out_dir, "--resume", "--max-iters", 6)
    assert code == 0 and "steps 4 -> 6" in out and trainer_state(out_dir)["global_step"] == 6


@pytest.mark.slow
def test_train_py_compile(tmp_path, capsys, corpus):
    """`train.py --compile` with the real backend (inductor builds C++ kernels: about a minute on a CPU)."""
    out_dir = tmp_path / "run"
    code, out, _ = train(capsys, "--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 3, "--eval-interval",
                         3, "--compile")
    assert code == 0 and "done: step 3" in out
    assert trainer_state(out_dir)["training_args"]["compile"] is True and "--compile" in trainer_state(out_dir)["command"]
    load_pretrained(out_dir)


def test_resume_refuses_a_text_with_other_characters(trained, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("ZYXWVU " * 200, encoding="utf-8")
    code, _, err = train(capsys, "--out-dir", trained, "--resume", "--max-iters", 30, "--data", other)
    assert code == 2 and "different set of characters" in err


@pytest.mark.parametrize("setup", ["missing", "empty", "model-without-state"])
def test_resume_needs_a_resume_state(trained, tmp_path, capsys, setup):
    out_dir = tmp_path / "run"
    if setup == "empty":
        out_dir.mkdir()
    elif setup == "model-without-state":
        shutil.copytree(trained, out_dir)
        (out_dir / "training_state.pt").unlink()
    code, _, err = train(capsys, "--out-dir", out_dir, "--resume")
    assert code == 2 and err.startswith("train.py: error: --resume:") and err.count("\n") == 1


def test_nothing_to_do_when_already_at_max_iters(trained, capsys):
    before = folder_digest(trained)
    code, out, _ = train(capsys, "--out-dir", trained, "--resume")
    assert code == 0 and "nothing to do" in out and folder_digest(trained) == before


# ----------------------------------------------------------------------------------------------- bad input


def _bad_corpus(tmp_path, kind):
    path = tmp_path / f"{kind}.txt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "latin1":
        path.write_bytes("ROMEO: caf\u00e9 au lait\n".encode("latin-1") * 10)
    elif kind == "short-val":  # train part 45 characters, val part 5: too short for block 8
        path.write_text("abcdefghij" * 5, encoding="utf-8")
    elif kind == "folder":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("empty", "the file is empty"),
        ("latin1", "not UTF-8 text: byte 10 (0xe9)"),
        ("short-val", "the validation (last 10 %) part has 5 characters but needs at least 9"),
        ("folder", "is a folder"),
    ],
)
def test_bad_corpus(tmp_path, capsys, kind, message):
    code, _, err = train(capsys, "--data", _bad_corpus(tmp_path, kind), "--out-dir", tmp_path / "out", *TINY)
    assert code == 2 and message in err
    assert err.startswith("train.py: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # a run that cannot start leaves nothing behind


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--eval-iters", "0"], "--eval-iters must be at least 1, got 0"),
        (["--batch-size", "-4"], "--batch-size must be at least 1, got -4"),
        (["--max-iters", "-1"], "--max-iters must be 0 or more, got -1"),
        (["--n-embd", "-16"], "TinyGPTConfig: n_embd must be a positive integer, got -16"),
        (["--n-embd", "30", "--n-head", "4"], "TinyGPTConfig: n_embd (30) must be divisible by n_head (4)"),
        (["--dropout", "1.5"], "TinyGPTConfig: dropout must be in [0, 1), got 1.5"),
        (["--learning-rate", "0"], "--learning-rate must be positive"),
        (["--lr-schedule", "cosine"], "--lr-schedule cosine needs --lr-decay-iters"),
        (["--beta2", "1.0"], "--beta2 must be in [0, 1)"),
        (["--dtype", "fp16", "--device", "cpu"], "--dtype fp16 needs a GPU"),
        (["--push-every-eval"], "--push-every-eval needs --push-to-hub REPO_ID"),
    ],
)
def test_bad_settings(tmp_path, capsys, corpus, flags, message):
    code, _, err = train(capsys, "--data", corpus, "--out-dir", tmp_path / "out", *TINY, *flags)
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu(tmp_path, capsys, corpus):
    code, _, err = train(capsys, "--data", corpus, "--out-dir", tmp_path / "out", *TINY, "--device", "cuda")
    assert code == 2 and "no CUDA GPU" in err


def test_out_dir_not_writable(tmp_path, capsys, corpus):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = train(capsys, "--data", corpus, "--out-dir", a_file, *TINY)
    assert code == 2 and "is a file" in err
    code, _, err = train(capsys, "--data", corpus, "--out-dir", a_file / "sub", *TINY)
    assert code == 2 and "is not writable" in err and err.count("\n") == 1
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, err = train(capsys, "--data", corpus, "--out-dir", locked, *TINY)
        assert code == 2 and "is not writable" in err


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        training.main(["--preset", "gpu"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'gpu'" in err


def test_push_failure_keeps_the_run(tmp_path, capsys, corpus, monkeypatch):
    """--push-to-hub calls tinygpt.model_repo.push_folder; when it fails, training and the local folder go on, the
    command to retry is printed once, and the exit status is 3 (the local Hub's 401 is in test_train_cli.py)."""
    import sys
    import types

    calls = []

    def push_folder(model_dir, repo_id, **kwargs):
        calls.append((model_dir, repo_id, kwargs))
        raise OSError("could not reach the Hub at https://hub.invalid: connection refused")

    monkeypatch.setitem(sys.modules, "tinygpt.model_repo", types.SimpleNamespace(push_folder=push_folder))
    out_dir = tmp_path / "run"
    code, out, err = train(capsys, "--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 10,
                           "--eval-interval", 5, "--push-to-hub", "me/tiny", "--push-every-eval")
    assert code == 3 and trainer_state(out_dir)["global_step"] == 10
    assert [c[1] for c in calls] == ["me/tiny"] * 3  # after each checkpoint: steps 0, 5, 10
    assert calls[-1][2]["commit_message"].startswith("step 10: val loss")
    assert err.count("push to me/tiny failed: could not reach the Hub") == 3
    assert err.count(f"tinygpt push {out_dir} me/tiny") == 1 and "done: step 10" in out
    load_pretrained(out_dir)


@pytest.fixture
def fresh_accelerate():
    """Accelerate keeps one process-wide state; a run with another dtype needs it reset (as a new process has)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def test_bf16_autocast_on_cpu(tmp_path, capsys, corpus, fresh_accelerate):
    out_dir = tmp_path / "run"
    code, _, err = train(capsys, "--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 20,
                         "--eval-interval", 20, "--dtype", "bf16")
    assert code == 0, err
    log = trainer_state(out_dir)["log_history"]
    assert log[-1]["val_loss"] < log[0]["val_loss"]
    model, _ = load_pretrained(out_dir)
    assert next(model.parameters()).dtype == torch.float32  # autocast: the weights stay fp32
