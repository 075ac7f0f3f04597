"""The training engine (tinygpt.engine) from Python: settings round trip, events, stop, time limit, the card.

train.py's command-line behaviour on top of it is in test_train.py and test_train_cli.py.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import re
import shlex
import shutil
import threading

import pytest
import torch
from huggingface_hub import ModelCard

from tinygpt import training
from tinygpt.card import build_model_card
from tinygpt.checkpoint import load_training_state
from tinygpt.corpus import decode_utf8
from tinygpt.engine import Trainer, TrainerCallback
from tinygpt.loading import load_pretrained
from tinygpt.publish import ModelCardWriter
from tinygpt.run_state import RunState
from tinygpt.settings import TrainingError, TrainingSettings
from train_helpers import REPO, TINY, folder_digest, train, trainer_state, without_elapsed, write_corpus

TINY_SETTINGS = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, learning_rate=0.01,
                     threads=1)

def readme_snippets() -> list[str]:
    """The README's "Train from Python" snippets (a run, then its resume), exactly as they are written there."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.split(r"\n##+ ", readme[readme.index("### Train from Python"):], maxsplit=1)[0]
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


@pytest.fixture(scope="session")
def text(corpus):
    """The training tests' corpus (tests/conftest.py) as a string: a text given in memory."""
    return corpus.read_text(encoding="utf-8")


class Recorder(TrainerCallback):
    """Every event with its arguments, plus what the folder held when on_save came."""

    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        self.events.append(("begin", trainer.step))

    def on_step_end(self, trainer, step, loss, lr):
        assert isinstance(loss, torch.Tensor) and loss.dim() == 0
        self.events.append(("step", step, lr))

    def on_evaluate(self, trainer, record):
        self.events.append(("evaluate", dict(record)))

    def on_checkpoint(self, trainer, step, folder):
        self.events.append(("checkpoint", step))

    def on_save(self, trainer, step, out_dir):
        self.events.append(("save", step, trainer_state(out_dir)["global_step"]))

    def on_train_end(self, trainer, reason):
        self.events.append(("end", reason))


def test_settings_round_trip(tmp_path, text):
    """flags -> TrainingSettings -> trainer_state.json -> its reproduce command -> the same TrainingSettings."""
    flags = ["--preset", "cpu", *TINY, "--max-iters", "4", "--eval-interval", "2", "--max-seconds", "600",
             "--lr-decay-iters", "400", "--warmup-iters", "2", "--dropout", "0.1", "--seed", "7",
             "--sample-interval", "4", "--save-interval", "4"]
    run_options = training.RUN_OPTIONS

    def settings_from(argv):
        given = vars(training.build_parser().parse_args(argv))
        return TrainingSettings.resolve({k: v for k, v in given.items() if k not in run_options})

    settings = settings_from(flags)
    assert settings.preset == "cpu" and settings.max_seconds == 600.0 and settings.n_embd == 16
    assert settings.eval_batch_size == 128 and settings.lr_schedule == "cosine"  # from the preset
    trainer = Trainer(settings, text=text, out_dir=tmp_path / "run", data_name="words.txt")
    assert trainer.train() == "finished"
    state = trainer_state(tmp_path / "run")
    assert TrainingSettings.from_dict(state["training_args"]) == settings
    command = state["command"].split()
    assert command[:2] == ["python", "train.py"]
    # How often a run saves is left out (it trains the same model): a copy from the command saves at every evaluation.
    assert settings.save_interval == 4 and "--save-interval" not in command and "--sample-interval" in command
    assert settings_from(command[2:]) == dataclasses.replace(settings, save_interval=None)
    assert TrainingSettings.from_dict(settings.to_dict()) == settings
    assert TrainingSettings.from_dict(load_training_state(tmp_path / "run")["settings"]) == settings


@pytest.mark.parametrize(("overrides", "message"), [
    ({"n_layer": 0}, "TinyGPTConfig: n_layer must be a positive integer, got 0"),
    ({"batch_size": 0}, "--batch-size must be at least 1, got 0"),
    ({"max_seconds": 0}, "--max-seconds must be positive, got 0"),
    ({"n_layer": "2"}, "--n-layer must be int, got '2'"),
    ({"device": "tpu"}, "--device must be one of auto, cpu, cuda, mps, got 'tpu'"),
    ({"layers": 2}, "unknown training setting(s) layers"),
    ({"eval_interval": 3, "sample_interval": 4}, "--sample-interval (4) must be a multiple of --eval-interval (3): "
     "it happens at evaluations"),
    ({"eval_interval": 3, "save_interval": 5}, "--save-interval (5) must be a multiple of --eval-interval (3)"),
    ({"sample_interval": 0}, "--sample-interval must be at least 1, got 0"),
])
def test_bad_settings_are_training_errors(overrides, message):
    with pytest.raises(TrainingError, match="^" + re.escape(message)):
        TrainingSettings.from_preset(None, **overrides)
    with pytest.raises(TrainingError, match="unknown preset 'gpu'"):
        TrainingSettings.from_preset("gpu")
    assert TrainingSettings.list_presets() == ["cpu", "seed"]


def test_events_in_order_with_their_values(tmp_path, text):
    recorder = Recorder()
    settings = TrainingSettings(**TINY_SETTINGS, max_iters=6, eval_interval=3)
    trainer = Trainer(settings, text=text, out_dir=tmp_path / "run", callbacks=[recorder])
    assert trainer.train() == "finished"
    names = [e[0] for e in recorder.events]
    assert names == ["begin", "evaluate", "checkpoint", "save", "step", "step", "step", "evaluate", "checkpoint",
                     "save", "step", "step", "step", "evaluate", "checkpoint", "save", "end"]
    assert recorder.events[0] == ("begin", 0) and recorder.events[-1] == ("end", "finished")
    steps = [e for e in recorder.events if e[0] == "step"]
    assert [e[1] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert [e[2] for e in steps] == [settings.learning_rate_at(i) for i in range(6)]
    assert [e[1:] for e in recorder.events if e[0] == "save"] == [(0, 0), (3, 3), (6, 6)]  # on disk when announced
    records = [e[1] for e in recorder.events if e[0] == "evaluate"]
    assert records == trainer.log_history == trainer_state(tmp_path / "run")["log_history"]
    assert [r["step"] for r in records] == [0, 3, 6]
    for record in records:
        assert set(record) == {"step", "train_loss", "val_loss", "lr", "elapsed_s", "sample"}
        assert len(record["sample"]) == 301 and record["sample"][0] == "\n"  # the prompt, then 300 characters
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert trainer.optimizer is None and not trainer.model.training  # after train(): no optimizer state, eval mode
    assert trainer.step == 6 and trainer.elapsed() >= records[-1]["elapsed_s"]


def test_stop_from_another_thread_saves(tmp_path, text):
    out_dir = tmp_path / "run"
    reached = threading.Event()

    class Signal(TrainerCallback):
        def on_step_end(self, trainer, step, loss, lr):
            if step == 5:
                reached.set()
                assert stopper_done.wait(30)  # the stop lands while this step is being reported

    stopper_done = threading.Event()
    trainer = Trainer(TrainingSettings(**TINY_SETTINGS, max_iters=100_000, eval_interval=1000), text=text,
                      out_dir=out_dir, callbacks=[Signal()])
    result = {}
    worker = threading.Thread(target=lambda: result.update(reason=trainer.train()))
    worker.start()
    assert reached.wait(60)
    trainer.stop()
    trainer.stop()  # twice is harmless
    stopper_done.set()
    worker.join(60)
    assert result["reason"] == "stopped" and trainer.step == 5
    assert trainer_state(out_dir)["global_step"] == 5 == load_training_state(out_dir)["step"]
    # The stopped model is evaluated where it stopped: the val loss offered is step 5's, not step 0's.
    state = RunState.load(out_dir)
    assert state.status == "stopped" and [r["step"] for r in state.log_history] == [0, 5]
    assert state.last_eval["val_loss"] != state.log_history[0]["val_loss"] and state.model_eval["step"] == 5
    model, _ = load_pretrained(out_dir)
    for name, value in model.state_dict().items():
        assert torch.equal(value, trainer.model.state_dict()[name]), name


@pytest.mark.timeout(90)  # 10 million steps: were the time budget broken, this would run for hours
def test_time_limit_evaluates_saves_and_ends(tmp_path, text):
    out_dir = tmp_path / "run"
    recorder = Recorder()
    settings = TrainingSettings(**TINY_SETTINGS, max_iters=10_000_000, eval_interval=1_000_000, max_seconds=1.5)
    trainer = Trainer(settings, text=text, out_dir=out_dir, callbacks=[recorder])
    assert trainer.train() == "time_limit"
    assert 1.5 <= trainer.elapsed() < 30 and 0 < trainer.step < settings.max_iters
    state = trainer_state(out_dir)
    assert state["global_step"] == trainer.step and [e["step"] for e in state["log_history"]] == [0, trainer.step]
    assert state["log_history"][-1]["elapsed_s"] >= 1.5
    assert recorder.events[-1] == ("end", "time_limit")


# ----------------------------------------------------------------------------------------------- resuming from Python

# A schedule that warms up, decays and reaches its floor within a few steps, with dropout (so the random streams
# matter): what a resumed run must reproduce exactly.
SCHEDULED = dict(TINY_SETTINGS, dropout=0.1, lr_schedule="cosine", warmup_iters=2, lr_decay_iters=5, min_lr=0.002,
                 eval_interval=3)


def test_a_notebook_resumes_exactly(tmp_path, text):
    """Trainer.resume(out_dir, max_iters=...) continues a run bit for bit: 3 steps, then resumed to 7, equals 7
    straight steps (weights, log, the optimizer's rates); a resume state written before the schedule was a torch
    scheduler (no "initial_lr" in the optimizer's groups) continues the same way."""
    short = dict(sample_length=20)  # the samples are compared too; 20 characters are enough and quicker
    straight = Trainer(TrainingSettings(**SCHEDULED, max_iters=7), text=text, out_dir=tmp_path / "straight", **short)
    straight.train()
    for name, old_format in (("split", False), ("old", True)):
        Trainer(TrainingSettings(**SCHEDULED, max_iters=3), text=text, out_dir=tmp_path / name, **short).train()
        if old_format:
            path = tmp_path / name / "training_state.pt"
            state = torch.load(path, weights_only=True)
            for group in state["optimizer"]["param_groups"]:
                del group["initial_lr"]
            torch.save(state, path)
        if not old_format:  # a resume with another --learning-rate has its peak, not the optimizer state's
            faster = Trainer.resume(tmp_path / name, learning_rate=0.02)
            assert faster.optimizer.param_groups[0]["lr"] == faster.settings.learning_rate_at(3) == \
                pytest.approx(0.02 * (0.1 + 0.5 * 1.5 * 0.9))  # a third of the way down the cosine
            faster.close()
        resumed = Trainer.resume(tmp_path / name, max_iters=7, **short)  # its text: the folder's train.txt
        assert resumed.resumed and resumed.step == 3 and resumed.settings.max_iters == 7
        assert resumed.optimizer.param_groups[0]["lr"] == resumed.settings.learning_rate_at(3)
        assert resumed.train() == "finished"
        assert without_elapsed(resumed.state.log_history) == without_elapsed(straight.state.log_history)
        a, b = load_training_state(tmp_path / "straight"), load_training_state(tmp_path / name)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
        assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]


def test_the_optimizer_runs_the_logged_schedule(tmp_path, text):
    """The rate is set by torch's scheduler, to the very number logged (on_step_end's lr, the log's "lr")."""
    rates = []

    class Rates(TrainerCallback):
        def on_step_end(self, trainer, step, loss, lr):
            rates.append((step, lr, trainer.optimizer.param_groups[0]["lr"]))  # the rate of the next step

    settings = TrainingSettings(**SCHEDULED, max_iters=7)
    trainer = Trainer(settings, text=text, out_dir=tmp_path / "run", callbacks=[Rates()], sample_length=20)
    assert isinstance(trainer.scheduler, torch.optim.lr_scheduler.LRScheduler)
    assert trainer.optimizer.param_groups[0]["lr"] == settings.learning_rate_at(0) == pytest.approx(0.01 / 3)
    trainer.train()
    assert [lr for _, lr, _ in rates] == [settings.learning_rate_at(i) for i in range(7)]
    assert [after for _, _, after in rates] == [settings.learning_rate_at(i) for i in range(1, 8)]
    assert rates[-1][2] == pytest.approx(0.002)  # the floor, past --lr-decay-iters
    assert [r["lr"] for r in trainer.state.log_history] == [settings.learning_rate_at(i) for i in (0, 2, 5, 6)]


def test_the_package_has_no_import_cycle():
    """No tinygpt module imports one that imports it back, lazily or not; the callback base class imports nothing
    of tinygpt (engine <-> tracking was a cycle while TrainerCallback lived in the engine)."""
    package = REPO / "tinygpt"
    imports = {}
    for path in package.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names |= {node.module} if node.module else {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinygpt."):
                names.add(node.module.split(".")[1])
        imports[path.stem] = {name.split(".")[0] for name in names} - {path.stem}

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in imports.get(start, ()))

    cycles = sorted(f"{a} <-> {b}" for a in imports for b in imports[a] if a < b and reaches(b, a))
    assert cycles == []
    assert imports["trainer_callback"] == set()


def test_a_notebook_gets_train_py_s_resume_checks(tmp_path, trained, corpus, capsys):
    """Every refusal of train.py --resume is Trainer.resume's too, word for word, and leaves the folder as it was."""
    other_characters = tmp_path / "other.txt"
    other_characters.write_text("ZYXWVU " * 200, encoding="utf-8")
    other_text = write_corpus(tmp_path / "same-characters.txt", seed=1)
    cases = [  # (train.py flags, Trainer.resume keyword arguments)
        (["--n-embd", "32"], {"n_embd": 32}),
        (["--preset", "seed"], {"preset": "seed"}),
        (["--init-from", "other/model"], {"init_from": "other/model"}),
        (["--data", other_characters], {"data_path": other_characters}),
        (["--data", other_text], {"data_path": other_text}),
    ]
    before = folder_digest(trained)
    for flags, kwargs in cases:
        code, _, err = train(capsys, "--out-dir", trained, "--resume", "--max-iters", 30, *flags)
        with pytest.raises(ValueError) as refused:
            Trainer.resume(trained, max_iters=30, **kwargs)
        assert code == 2 and err == f"train.py: error: {refused.value}\n", flags
        assert folder_digest(trained) == before
    code, _, err = train(capsys, "--out-dir", tmp_path / "nothing", "--resume")
    with pytest.raises(TrainingError, match="does not exist; there is no run to continue") as refused:
        Trainer.resume(tmp_path / "nothing")
    assert err == f"train.py: error: {refused.value}\n"
    with pytest.raises(TrainingError, match="--data-changed goes with --resume"):
        Trainer(TrainingSettings(**TINY_SETTINGS), data_path=corpus, out_dir=tmp_path / "new", data_changed=True)
    assert not (tmp_path / "new").exists()


def test_a_notebook_resume_rewrites_damaged_model_files(tmp_path, trained):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    (folder / "model.safetensors").unlink()
    trainer = Trainer.resume(folder)  # already at its max_iters: train() only repairs and evaluates nothing
    assert trainer.damage == "model.safetensors is missing"
    assert trainer.train() == "finished" and trainer.damage is None
    assert load_pretrained(folder)[0] is not None and trainer_state(folder)["global_step"] == 20


def test_card_is_built_from_trainer_state(tmp_path, text):
    out_dir = tmp_path / "run"
    trainer = Trainer(TrainingSettings(**TINY_SETTINGS, max_iters=4, eval_interval=2), text=text, out_dir=out_dir,
                      data_name="words.txt", callbacks=[ModelCardWriter()])
    trainer.train()
    state = trainer_state(out_dir)
    card = ModelCard.load(out_dir / "README.md")
    assert "## How it learned" in card.text and "## A sample" in card.text
    for record in state["log_history"]:  # every evaluation: step, val loss and its sample
        assert f"**step {record['step']}**, val loss {record['val_loss']:.4f}" in card.text
        assert record["sample"].strip("\n") in card.text
    assert state["command"] in card.text and f"| parameters | {state['n_params']:,} |" in card.text
    assert card.data.val_loss == round(state["best_val_loss"], 4)  # the flat key app.py reads
    (result,) = card.data.eval_results  # model-index, the Hub's metadata format
    assert (result.task_type, result.metric_type, result.metric_value) == (
        "text-generation", "loss", round(state["best_val_loss"], 4))
    assert result.dataset_name == "words.txt"

    # The card follows trainer_state.json, not an earlier card: change the record, and the card changes with it.
    state["log_history"][-1]["sample"] = "\nA new sample, recorded by hand."
    state["command"] = "python train.py --data other.txt --out-dir run"
    state["data"] = {"name": "tinyshakespeare.txt", "characters": 1_115_394}
    (out_dir / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    (out_dir / "README.md").write_text("---\nlicense: apache-2.0\n---\nan edited card\n", encoding="utf-8")
    card = build_model_card(out_dir)
    assert "A new sample, recorded by hand." in card.text and "--data other.txt" in card.text
    assert card.data.license == "apache-2.0"  # the one thing kept from the current card: its YAML license
    (result,) = card.data.eval_results
    assert (result.dataset_type, result.dataset_name) == ("karpathy/tiny_shakespeare", "tiny_shakespeare")


def test_run_name_names_the_model_in_the_card_and_the_reproduce_command(tmp_path, text):
    """A server trains into a temporary folder; the card and the command name the run as the caller chooses."""
    out_dir = tmp_path / "tmp-xyz" / "run"
    trainer = Trainer(TrainingSettings(**TINY_SETTINGS, max_iters=2, eval_interval=2), text=text, out_dir=out_dir,
                      data_name="words.txt", run_name="tinygpt-words", callbacks=[ModelCardWriter()])
    trainer.train()
    state = trainer_state(out_dir)
    assert "--out-dir tinygpt-words" in state["command"] and str(out_dir) not in state["command"]
    card = (out_dir / "README.md").read_text(encoding="utf-8")
    assert 'AutoModelForCausalLM.from_pretrained("tinygpt-words", trust_remote_code=True)' in card
    assert str(tmp_path) not in card  # no trace of the server's folder
    assert "\n# tinygpt-words\n" in card  # its title
    # Without it, the output folder names the run (train.py's behaviour), but the title is its name, not a path.
    plain = Trainer(TrainingSettings(**TINY_SETTINGS, max_iters=2, eval_interval=2), text=text,
                    out_dir=tmp_path / "plain", callbacks=[ModelCardWriter()])
    plain.train()
    assert f"--out-dir {tmp_path / 'plain'}" in trainer_state(tmp_path / "plain")["command"]
    card = ModelCard.load(tmp_path / "plain" / "README.md")
    assert "\n# plain\n" in card.text and card.data.model_name == "plain"
    assert card.data.eval_results[0].dataset_name == "text" and str(tmp_path) not in card.data.model_name


def test_reproduce_command_runs_as_written(tmp_path, text, monkeypatch):
    """From the project root: the bundled text by its path in the project; a text given in memory is saved in the
    folder as train.txt, which the command names. Run the command (two steps) where the folder is its run name."""
    bundled = Trainer(TrainingSettings(**TINY_SETTINGS, max_iters=0), data_path=REPO / "data" / "tinyshakespeare.txt",
                      out_dir=tmp_path / "bundled")
    args = training.build_parser().parse_args(bundled.state.command.split()[2:])
    assert args.data == "data/tinyshakespeare.txt" and (REPO / args.data).is_file()
    bundled.close()

    project = tmp_path / "project"
    trainer = Trainer(TrainingSettings(**TINY_SETTINGS, max_iters=2, eval_interval=2), text=text,
                      out_dir=project / "tinygpt-words", data_name="pasted text", run_name="tinygpt-words",
                      callbacks=[ModelCardWriter()])
    trainer.train()
    command = trainer_state(project / "tinygpt-words")["command"]
    # It trains into a folder of its own beside the one it reads the text from (which holds this model).
    assert command.split()[:6] == ["python", "train.py", "--data", "tinygpt-words/train.txt", "--out-dir",
                                   "tinygpt-words-again"]
    assert (project / "tinygpt-words" / "train.txt").read_text(encoding="utf-8") == text
    assert "`tinygpt-words/train.txt`, saved beside" in (project / "tinygpt-words" / "README.md").read_text()
    monkeypatch.chdir(project)
    assert training.main(shlex.split(command)[2:]) == 0  # exactly as written
    again = RunState.load(project / "tinygpt-words-again")
    assert again.global_step == 2 and again.data["characters"] == len(text)
    assert without_elapsed(again.log_history) == without_elapsed(trainer.state.log_history)  # the same run


def test_run_state_round_trip_and_old_files(tmp_path):
    state = RunState(global_step=7, max_steps=9, log_history=[{"step": 7, "train_loss": 1.0, "val_loss": 1.5}],
                     best_val_loss=1.5, best_step=7, model_step=7, elapsed_s=2.5, n_params=123, status="stopped",
                     training_args={"n_layer": 1}, data={"name": "a.txt"}, command="python train.py",
                     run_name="run", warnings=["note"], extra={"added_later": True})
    state.save(tmp_path)
    assert RunState.load(tmp_path) == state and json.loads(state.to_json())["added_later"] is True
    # A file written before RunState: no best_step, status or warnings; they come from its log.
    old = {"global_step": 40, "max_steps": 40, "best_val_loss": 2.0, "num_processes": 1, "train_batch_size": 4,
           "n_params": 9, "log_history": [{"step": 0, "train_loss": 3.0, "val_loss": 3.1},
                                          {"step": 20, "train_loss": 2.1, "val_loss": 2.0},
                                          {"step": 40, "train_loss": 1.9, "val_loss": 2.2}],
           "training_args": {}, "data": {"name": "a.txt"}, "command": "python train.py --data a.txt"}
    (tmp_path / "trainer_state.json").write_text(json.dumps(old))
    loaded = RunState.load(tmp_path)
    assert (loaded.global_step, loaded.best_step, loaded.status, loaded.warnings) == (40, 20, "finished", [])
    assert loaded.model_eval["step"] == 40 and loaded.best_eval["val_loss"] == 2.0
    assert {k: v for k, v in loaded.to_dict().items() if k in old} == old  # its keys, unchanged
    assert RunState.load(tmp_path / "nowhere") is None
    (tmp_path / "trainer_state.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="trainer_state.json: expected a JSON object"):
        RunState.load(tmp_path)


def test_memorising_is_told_in_plain_words(tmp_path):
    """A rhyme pasted many times: its val part repeats the training text, and the state (so the page, train.py's
    log and the card) says so. A slice of Shakespeare: no warning."""
    rhyme = "Twinkle, twinkle, little star,\nHow I wonder what you are!\n" * 60
    shakespeare = (REPO / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")[:20_000]
    warnings = {}
    for name, text in (("rhyme", rhyme), ("shakespeare", shakespeare)):
        trainer = Trainer(TrainingSettings(**TINY_SETTINGS), text=text, out_dir=tmp_path / name)
        warnings[name] = trainer.state.warnings
        trainer.close()
    (warning,) = warnings["rhyme"]
    assert warning.startswith("Memorising, not learning: 100% of the held-out text (the last 10 %) also appears in "
                              "the training text")
    assert warnings["shakespeare"] == []


def scripted_losses(monkeypatch, losses):
    """Trainer.estimate_loss returns these (train, val) pairs in turn: a run whose val loss rises on cue."""
    pairs = iter(losses)
    monkeypatch.setattr(Trainer, "estimate_loss", lambda self: next(pairs))


def test_best_val_model_is_kept_and_overfitting_is_told(tmp_path, text, monkeypatch):
    """keep="best": model.safetensors holds the weights of the lowest val loss (state.best_step says which),
    training_state.pt the latest (resume continues from the last step); val rising while train falls is told."""
    scripted_losses(monkeypatch, [(3.0, 3.0), (2.0, 2.0), (1.5, 2.2), (1.0, 2.6)])
    weights = {}

    class Snapshot(TrainerCallback):
        def on_evaluate(self, trainer, record):
            weights[record["step"]] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    out_dir = tmp_path / "run"
    settings = TrainingSettings(**TINY_SETTINGS, max_iters=6, eval_interval=2, keep="best")
    trainer = Trainer(settings, text=text, out_dir=out_dir, callbacks=[Snapshot(), ModelCardWriter()])
    trainer.train()
    state = RunState.load(out_dir)
    assert (state.best_step, state.model_step, state.global_step, state.best_val_loss) == (2, 2, 6, 2.0)
    assert state.model_eval["val_loss"] == 2.0
    (warning,) = state.warnings
    assert warning.startswith("Val loss is rising while train loss falls (val 2.000 at step 2 -> 2.600 at step 6)")
    assert "best model was at step 2" in warning
    model, _ = load_pretrained(out_dir)
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[2][name]), name
    resume = load_training_state(out_dir)
    assert resume["step"] == 6 and all(torch.equal(resume["model"][k], weights[6][k]) for k in weights[6])
    card = ModelCard.load(out_dir / "README.md")
    assert card.data.val_loss == 2.0 and "Best validation loss: **2.0000**" in card.text
    assert "the weights kept in this folder" in card.text and warning in card.text
    assert "lower is better" in card.text and f"{2.0 / 0.6931471805599453:.2f} bits per character" in card.text


def test_losses_between_samples_and_checkpoints_keep_the_best_and_its_sample(tmp_path, text, monkeypatch):
    """sample_interval and save_interval (the Train tab's cadence): every evaluation records the losses, only those
    at sample_interval's multiples (and the last) write a sample, only those at save_interval's a checkpoint. The
    best weights, found at an evaluation of losses only, are the folder's model all the same; they are sampled when
    a checkpoint keeps them, so the card shows what they write."""
    scripted_losses(monkeypatch, [(3.0, 3.0), (2.0, 2.0), (1.5, 2.2), (1.2, 2.4), (1.0, 2.6)])
    weights = {}

    class Snapshot(Recorder):
        def on_evaluate(self, trainer, record):
            super().on_evaluate(trainer, record)
            weights[record["step"]] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    recorder, out_dir = Snapshot(), tmp_path / "run"
    settings = TrainingSettings(**TINY_SETTINGS, max_iters=8, eval_interval=2, sample_interval=4, save_interval=4,
                                keep="best")
    trainer = Trainer(settings, text=text, out_dir=out_dir, callbacks=[recorder, ModelCardWriter()],
                      sample_length=20)
    trainer.train()
    announced = [e[1] for e in recorder.events if e[0] == "evaluate"]
    assert [(r["step"], "sample" in r) for r in announced] == [(0, True), (2, False), (4, True), (6, False),
                                                                (8, True)]
    assert [e[1] for e in recorder.events if e[0] == "save"] == [0, 4, 8]
    state = RunState.load(out_dir)
    assert (state.best_step, state.model_step, state.global_step) == (2, 2, 8)
    model, _ = load_pretrained(out_dir)
    assert all(torch.equal(value, weights[2][name]) for name, value in model.state_dict().items())
    # Step 2's sample was added when step 4's checkpoint kept its weights: what those weights write.
    assert [("sample" in r) for r in state.log_history] == [True, True, True, False, True]
    assert trainer.state.log_history == state.log_history
    trainer.model.load_state_dict(weights[2])
    assert state.best_eval["sample"] == trainer.sample() != state.last_eval["sample"]
    assert state.best_eval["sample"] in ModelCard.load(out_dir / "README.md").text.split("## A sample")[1]


def test_the_cadence_never_changes_the_training(tmp_path, text, monkeypatch):
    """Losses-only evaluations, samples of the kept weights and fewer checkpoints move no random stream and no
    weight: the same run with a sample and a checkpoint at every evaluation ends bit for bit the same, and so does
    one stopped at a checkpoint and resumed (it keeps the cadence, a saved setting)."""
    measured = Trainer.estimate_loss

    def best_at_step_2(self):  # the real losses, val lifted after step 2: the kept weights are a losses-only point's
        train_loss, val_loss = measured(self)
        return train_loss, val_loss + (10.0 if self.step > 2 else 0.0)

    monkeypatch.setattr(Trainer, "estimate_loss", best_at_step_2)
    short = dict(sample_length=20)
    rare = dict(SCHEDULED, eval_interval=2, sample_interval=4, save_interval=4, keep="best")
    runs = {"every": dict(SCHEDULED, eval_interval=2, keep="best"), "rare": rare}
    for name, settings in runs.items():
        Trainer(TrainingSettings(**settings, max_iters=8), text=text, out_dir=tmp_path / name, **short).train()
    Trainer(TrainingSettings(**rare, max_iters=4), text=text, out_dir=tmp_path / "resumed", **short).train()
    resumed = Trainer.resume(tmp_path / "resumed", max_iters=8, **short)
    assert resumed.settings.sample_interval == 4 and resumed.settings.save_interval == 4
    resumed.train()
    every, rare_state, again = (load_training_state(tmp_path / name) for name in ("every", "rare", "resumed"))
    for other in (rare_state, again):
        assert all(torch.equal(every["model"][k], other["model"][k]) for k in every["model"])
        assert every["optimizer"]["state"].keys() == other["optimizer"]["state"].keys()
        assert all(torch.equal(every["optimizer"]["state"][i]["exp_avg_sq"], other["optimizer"]["state"][i]
                               ["exp_avg_sq"]) for i in every["optimizer"]["state"])

    def losses(log):
        return [(r["step"], r["train_loss"], r["val_loss"]) for r in log]

    assert losses(every["log_history"]) == losses(rare_state["log_history"]) == losses(again["log_history"])
    assert without_elapsed(again["log_history"]) == without_elapsed(rare_state["log_history"])
    sampled = {r["step"]: r["sample"] for r in every["log_history"]}
    assert [r["step"] for r in rare_state["log_history"] if "sample" in r] == [0, 2, 4, 8]  # 2: the kept weights
    assert all(sampled[r["step"]] == r["sample"] for r in rare_state["log_history"] if "sample" in r)


def test_compile_trains_through_the_compiled_step(tmp_path, text, monkeypatch):
    """--compile: every training step goes through torch.compile (a counting backend stands in for inductor,
    which takes a minute to build on a CPU), with the same losses as without it."""
    from tinygpt import engine

    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    monkeypatch.setattr(engine, "COMPILE_BACKEND", counting_backend)
    logs = {}
    for compile in (True, False):
        trainer = Trainer(TrainingSettings(**TINY_SETTINGS, max_iters=3, eval_interval=3, compile=compile),
                          text=text, out_dir=tmp_path / str(compile))
        trainer.train()
        logs[compile] = without_elapsed(trainer.state.log_history)
    assert graphs, "the training step never went through torch.compile"
    assert logs[True] == logs[False]


def test_bad_text_is_refused_before_training(tmp_path):
    out_dir = tmp_path / "run"
    settings = TrainingSettings(**TINY_SETTINGS)
    for text, message in [("", "the text is empty"), ("abcdefghij" * 5, "the validation (last 10 %) part has 5 "
                          "characters but needs at least 9 (block_size + 1). The text has 50 characters")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            Trainer(settings, text=text, out_dir=out_dir)
        assert not out_dir.exists()
    with pytest.raises(TrainingError, match="either as text= or as data_path="):
        Trainer(settings, text="abc", data_path="a.txt", out_dir=out_dir)
    with pytest.raises(ValueError, match=r"upload.txt: not UTF-8 text: byte 10 \(0xe9\)"):
        decode_utf8("ROMEO: caf\u00e9".encode("latin-1"), "upload.txt")


@pytest.mark.slow
def test_the_readme_snippet(tmp_path, monkeypatch):
    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.chdir(tmp_path)
    run, resume = readme_snippets()
    namespace, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(run, "README.md", "exec"), namespace)
    lines = printed.getvalue()
    assert lines.count(", val loss ") == 3 and lines.rstrip().endswith("finished")  # steps 0, 300 and 600
    assert "step 600, val loss " in lines
    assert trainer_state(tmp_path / "out" / "my-model")["global_step"] == 600
    load_pretrained(tmp_path / "out" / "my-model")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(resume, "README.md", "exec"), namespace)  # the same session: PrintSamples is defined
    lines = printed.getvalue()
    assert lines.count(", val loss ") == 1 and "step 700, val loss " in lines and lines.rstrip().endswith("finished")
    assert trainer_state(tmp_path / "out" / "my-model")["global_step"] == 700
