"""Faults a night of training must survive (issue 16): a kill between any two file operations of a save, a full
disk, a diverging loss, a resume on another text, a damaged folder, input that is not a text file.

Each asserts one line on stderr, the documented exit status (2 bad input or a failed save, 4 diverged) and a
folder that loads the old model or the new one, and resumes where it says it is. Kills are real: a forked
child (imports and model already built, so each costs a fraction of a second) dies with os._exit just before its
N-th file operation, for N = 0, 1, 2, ... until the save completes.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest
import torch

from tinygpt import checkpoint, cli, training
from tinygpt.loading import load_pretrained
from train_helpers import TINY, folder_digest, train, trainer_state, write_corpus

KILLED, DONE, FAILED = 57, 58, 59
SETTINGS = dict(n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4, eval_iters=2, threads=1)  # TINY's
# Everything a save does to the file system, besides writing bytes into its staging folder.
FILE_OPERATIONS = [(os, "replace"), (os, "rename"), (os, "link"), (os, "unlink"), (os, "rmdir"), (os, "mkdir"),
                   (os, "chmod"), (os, "fsync"), (shutil, "rmtree"), (shutil, "copy2"), (checkpoint, "_exchange")]


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# `corpus` and `trained` (the old model: 20 steps, checkpointed at 0, 10 and 20) are tests/conftest.py's.


def weights(folder: Path) -> dict:
    model, _ = load_pretrained(folder)
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def hidden_siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


# ----------------------------------------------------------------------------------------------- kills


def run_killed_at(n: int, action) -> int:
    """Run `action()` in a forked child that dies (os._exit: no cleanup, no finally) just before its n-th file
    operation; KILLED, or DONE when the action finished first."""
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = DONE
        try:
            calls = itertools.count()

            def dies_at_n(function):
                def operation(*args, **kwargs):
                    if next(calls) == n:
                        os._exit(KILLED)
                    return function(*args, **kwargs)
                return operation

            for module, name in FILE_OPERATIONS:
                setattr(module, name, dies_at_n(getattr(module, name)))
            action()
        except BaseException:
            traceback.print_exc()
            code = FAILED
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (KILLED, DONE), f"the save failed in the child (status {code}) at kill point {n}"
    return code


def kill_at_every_operation(reset, action, check, resume_check) -> int:
    """For N = 0, 1, ...: reset the folder, run `action` killed at operation N, `check()` the folder (returns a
    key for what it holds), and for each new key `resume_check()` it once. Returns the number of kill points."""
    resumed = set()
    for n in itertools.count():
        reset()
        outcome = run_killed_at(n, action)
        key = check()
        if key not in resumed:
            resumed.add(key)
            resume_check(key)
        if outcome == DONE:
            return n


def resumes(capsys, folder: Path, step: int) -> None:
    """`--resume` continues the folder from `step` for one more step, and leaves no staging behind."""
    code, out, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", step + 1)
    assert code == 0, err
    assert f"steps {step} -> {step + 1}" in out
    assert trainer_state(folder)["global_step"] == step + 1 and checkpoint.load_training_state(folder)["step"] == step + 1
    assert not (folder / checkpoint.STAGING_NAME).exists() and hidden_siblings(folder) == []


def trainer_for(args: list) -> training.Trainer:
    trainer, damage = training.setup(vars(training.build_parser().parse_args([str(a) for a in args])),
                                     time.perf_counter(), [])
    assert damage is None
    trainer.sample_length = 20
    return trainer


@pytest.mark.slow
def test_a_kill_at_any_point_of_the_first_save_leaves_a_run_that_resumes_or_no_model(tmp_path, capsys, corpus):
    folder = tmp_path / "new"
    trainer = trainer_for(["--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 5, "--eval-interval", 5])
    trainer.evaluate(0)
    new = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def reset():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()

    def check():
        if not checkpoint.holds_model(folder):  # nothing: the same command starts afresh, no --overwrite asked
            checkpoint.prepare_out_dir(folder, resume=False, overwrite=False, is_main=True)
            return "no model"
        state = checkpoint.load_training_state(folder)  # else it resumes, from the new step
        assert state["step"] == 0 and same(state["model"], new)
        if (folder / "config.json").exists():
            assert same(weights(folder), new)
            return "complete"
        return "resume state only"

    def resume_check(key):
        if key == "no model":
            code, _, err = train(capsys, "--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 1)
            assert code == 0, err
        else:
            resumes(capsys, folder, 0)
        assert same(checkpoint.load_training_state(folder)["model"], weights(folder))

    try:
        points = kill_at_every_operation(reset, lambda: trainer.save(0), check, resume_check)
    finally:
        trainer.close()
    assert points > 20


@pytest.mark.slow
def test_a_kill_at_any_point_of_a_later_save_leaves_the_old_or_the_new_step(tmp_path, capsys, trained):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    trainer = trainer_for(["--out-dir", folder, "--resume", "--max-iters", 21])
    old = weights(trained)
    trainer.train_step(20)
    trainer.step = 21
    new = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert not same(old, new)

    def reset():
        shutil.rmtree(folder)
        shutil.copytree(trained, folder)

    def check():
        loaded = weights(folder)
        assert same(loaded, old) or same(loaded, new)
        state = checkpoint.load_training_state(folder)
        assert state["step"] in (20, 21) and same(state["model"], old if state["step"] == 20 else new)
        return state["step"], same(loaded, new)

    try:
        points = kill_at_every_operation(reset, lambda: trainer.save(21), check,
                                         lambda key: resumes(capsys, folder, key[0]))
    finally:
        trainer.close()
    assert points > 20


@pytest.mark.slow
def test_a_kill_at_any_point_of_an_overwrite_leaves_the_old_model_or_the_new_one(tmp_path, capsys, trained, corpus):
    """--overwrite with other dimensions: a mix of old and new files would not load; the old one must stay whole
    until the new one replaces it in one move. Files of the user's in the folder are kept."""
    folder = tmp_path / "run"

    def reset():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(trained, folder)
        (folder / "notes.txt").write_text("mine\n")

    reset()
    old_files = folder_digest(folder)
    trainer = trainer_for(["--data", corpus, "--out-dir", folder, *TINY, "--n-embd", 32, "--max-iters", 5,
                           "--eval-interval", 5, "--overwrite"])
    trainer.evaluate(0)
    new = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def check():
        assert (folder / "notes.txt").read_text() == "mine\n"
        loaded = weights(folder)
        if loaded["token_embedding.weight"].shape[1] == 16:  # the old model, untouched
            assert folder_digest(folder) == old_files
            return "old"
        assert same(loaded, new) and checkpoint.load_training_state(folder)["step"] == 0
        return "new"

    try:
        points = kill_at_every_operation(reset, lambda: trainer.save(0), check,
                                         lambda key: resumes(capsys, folder, 20 if key == "old" else 0))
    finally:
        trainer.close()
    assert points > 20


def test_where_folders_cannot_be_exchanged_a_kill_between_the_two_renames_keeps_the_old_model(
        tmp_path, capsys, trained, monkeypatch):
    """Without renameat2 (not Linux) --overwrite renames the old folder aside, then the new one in: killed in
    between, the next run puts the old one back before anything else."""
    folder = tmp_path / "run"
    shutil.copytree(trained, tmp_path / ".run.old-x1")
    shutil.copytree(trained, tmp_path / ".run.tmp-x1")  # the new folder, complete or not: never trusted
    before = folder_digest(tmp_path / ".run.old-x1")
    code, _, err = train(capsys, "--out-dir", folder, "--data", "missing.txt", *TINY)
    assert code == 2 and "already holds a model (step 20)" in one_line(err)
    assert folder_digest(folder) == before and hidden_siblings(folder) == []

    monkeypatch.setattr(checkpoint, "_exchange", lambda a, b: False)
    kills = []
    real_rename = os.rename

    def killed_after_the_first(src, dst):
        if ".old-" in str(dst):
            real_rename(src, dst)
            kills.append(dst)
            raise KeyboardInterrupt  # stands for the kill: no cleanup catches it
        real_rename(src, dst)

    monkeypatch.setattr(checkpoint.os, "rename", killed_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.replace_folder(folder, lambda d: (d / "config.json").write_text("{}"))
    monkeypatch.undo()
    assert kills and not folder.exists()
    checkpoint.prepare_out_dir(folder, resume=True, overwrite=False, is_main=True)
    assert folder_digest(folder) == before and hidden_siblings(folder) == []


# ----------------------------------------------------------------------------------------------- full disk


class SmallDisk:
    """A 3 MB tmpfs at `path`; `fill()` takes its last free byte, `free()` gives the space back."""

    def __init__(self, path: Path):
        self.path = path

    def __truediv__(self, name):
        return self.path / name

    def fill(self):
        with open(self.path / "filler", "wb", buffering=0) as f:
            for size in (1 << 16, 1 << 12, 1):  # big blocks, then what is left of the last one
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError as err:
                    assert err.errno == errno.ENOSPC

    def free(self):
        (self.path / "filler").unlink()


@pytest.fixture
def small_disk(tmp_path):
    """A full-disk case for real, where this process may mount a tmpfs (root with CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the patched-writer tests below cover the same errors)")
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_at_a_later_save_is_one_line_and_keeps_the_checkpoint(small_disk, capsys, trained):
    folder = small_disk / "run"
    shutil.copytree(trained, folder)
    before = folder_digest(folder)
    small_disk.fill()
    code, _, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", 30)
    assert code == 2 and one_line(err).startswith("train.py: error: could not save step 30")
    assert "disk full: No space left on device" in err and "the previous checkpoint (step 20) is intact" in err
    assert folder_digest(folder) == before and not (folder / checkpoint.STAGING_NAME).exists()
    small_disk.free()
    assert train(capsys, "--out-dir", folder, "--resume", "--max-iters", 30)[0] == 0
    assert trainer_state(folder)["global_step"] == 30


def test_a_full_disk_at_the_first_save_leaves_no_model(small_disk, capsys, corpus):
    folder = small_disk / "run"
    args = ["--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 5, "--eval-interval", 5]
    small_disk.fill()
    code, _, err = train(capsys, *args)
    assert code == 2 and "could not save step 0" in one_line(err) and "disk full" in err
    assert "nothing was changed in the folder" in err and not checkpoint.holds_model(folder)
    small_disk.free()
    assert train(capsys, *args)[0] == 0  # the same command, no --overwrite needed
    assert trainer_state(folder)["global_step"] == 5


def test_a_full_disk_during_overwrite_keeps_the_old_model(small_disk, capsys, trained, corpus):
    folder = small_disk / "run"
    shutil.copytree(trained, folder)
    before = folder_digest(folder)
    args = ["--data", corpus, "--out-dir", folder, *TINY, "--n-embd", 32, "--max-iters", 5, "--eval-interval", 5,
            "--overwrite"]
    small_disk.fill()
    code, _, err = train(capsys, *args)
    assert code == 2 and "could not save step 0" in one_line(err) and "disk full" in err
    assert folder_digest(folder) == before and hidden_siblings(folder) == []
    assert load_pretrained(folder)[0].config.n_embd == 16
    small_disk.free()
    assert train(capsys, *args)[0] == 0
    assert load_pretrained(folder)[0].config.n_embd == 32 and hidden_siblings(folder) == []


def test_convert_seed_on_a_full_disk(small_disk, capsys, tmp_path, small_text):
    from seed_gpt import build_seed_gpt

    seed = build_seed_gpt(vocab=len(set(small_text)), embd=48, heads=3, layers=2, block=24)
    path, text = tmp_path / "seed.pt", tmp_path / "input.txt"
    torch.save(seed.state_dict(), path)
    text.write_text(small_text, encoding="utf-8")
    small_disk.fill()
    capsys.readouterr()
    code = cli.main(["convert-seed", str(path), "--data", str(text), "--out", str(small_disk / "model")])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err).startswith(f"tinygpt convert-seed: error: could not write {small_disk / 'model'}")
    assert "disk full: No space left on device" in err and "nothing was written" in err
    assert sorted(p.name for p in small_disk.path.iterdir()) == ["filler"]


def _safetensors_disk_full(*args, **kwargs):
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def _torch_disk_full(*args, **kwargs):
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:  # what torch.save to a file object raises: its own error, the OSError as the context
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534") from None


def _os_error(code):
    def raises(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return raises


@pytest.mark.parametrize(("where", "error", "said"), [
    ("transformers.modeling_utils.safe_save_file", _safetensors_disk_full, "disk full: No space left on device"),
    ("tinygpt.checkpoint.torch.save", _torch_disk_full, "disk full: No space left on device"),
    ("tinygpt.checkpoint.fsync_file", _os_error(errno.EDQUOT), "disk full: Disk quota exceeded"),
    ("tinygpt.checkpoint.fsync_file", _os_error(errno.EROFS), "write failed: Read-only file system"),
    ("tinygpt.publish.plot_losses", lambda *a, **k: 1 / 0, "write failed: ZeroDivisionError: division by zero"),
], ids=["safetensors", "torch", "quota", "read-only", "a-callback"])
def test_whatever_a_serialiser_raises_is_one_line_and_the_checkpoint_stays(
        tmp_path, capsys, monkeypatch, trained, where, error, said):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    before = folder_digest(folder)
    monkeypatch.setattr(where, error)
    code, _, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", 21)
    assert code == 2 and said in one_line(err) and "the previous checkpoint (step 20) is intact" in err
    assert folder_digest(folder) == before and not (folder / checkpoint.STAGING_NAME).exists()


# ----------------------------------------------------------------------------------------------- divergence


def test_a_diverging_run_stops_at_once_keeps_the_last_good_checkpoint_and_resumes(tmp_path, capsys, corpus):
    folder = tmp_path / "run"
    code, out, err = train(capsys, "--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 300,
                           "--eval-interval", 50, "--learning-rate", "1e9")
    assert code == 4 and one_line(err).startswith("train.py: error: training diverged: the loss became nan at step")
    assert f"{folder} keeps the last good checkpoint (step 0)" in err and "--resume --learning-rate 0.001" in err
    assert trainer_state(folder)["global_step"] == 0 and "step 50:" not in out
    assert all(torch.isfinite(w).all() for w in weights(folder).values())
    code, out, err = train(capsys, "--out-dir", folder, "--resume", "--learning-rate", "0.01", "--max-iters", 50)
    assert code == 0, err
    assert "steps 0 -> 50" in out and [e["step"] for e in trainer_state(folder)["log_history"]] == [0, 50]


def test_divergence_is_reported_at_the_step_it_appears(tmp_path, capsys, corpus, monkeypatch):
    """Weights broken by step 13's update: step 14's loss is the first NaN, found at the next check (the step-20
    evaluation), with no sync per step; the step-10 checkpoint stays."""
    from tinygpt import engine

    original = engine.Trainer.train_step

    def breaks_at_13(self, step):
        loss = original(self, step)
        if step == 13:
            with torch.no_grad():
                self.model.ln_f.weight.fill_(float("nan"))
        return loss

    monkeypatch.setattr(engine.Trainer, "train_step", breaks_at_13)
    folder = tmp_path / "run"
    code, out, err = train(capsys, "--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 40,
                           "--eval-interval", 10)
    assert code == 4 and "the loss became nan at step 14 " in one_line(err) and "(step 10)" in err
    assert trainer_state(folder)["global_step"] == 10 and "step 20:" not in out


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_non_finite_learning_rate_is_refused(tmp_path, capsys, corpus, value):
    code, _, err = train(capsys, "--data", corpus, "--out-dir", tmp_path / "out", *TINY, f"--learning-rate={value}")
    assert code == 2 and f"--learning-rate must be a finite number, got {value}" in one_line(err)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------- the text


def test_resume_on_another_text_is_refused_unless_said(tmp_path, capsys, trained, corpus):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    before = folder_digest(folder)
    other = write_corpus(tmp_path / "other.txt", seed=1)  # the same words: the same characters, another text
    assert set(other.read_text()) == set(corpus.read_text())
    code, _, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", 30, "--data", other)
    assert code == 2 and f"--resume: {other} is not the text the model in {folder} was trained on" in one_line(err)
    assert "--data-changed" in err and folder_digest(folder) == before

    code, _, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", 30, "--data", other, "--data-changed")
    assert code == 0, err
    data = trainer_state(folder)["data"]
    assert data["path"] == str(other) and data["data_changed_at_step"] == 20
    assert data["previous_data"]["path"] == str(corpus)
    code, _, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", 40)  # the new text is the run's now
    assert code == 0, err
    assert trainer_state(folder)["data"]["data_changed_at_step"] == 20  # and the change stays on record
    code, _, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", 50, "--data", corpus)
    assert code == 2 and "is not the text" in err
    code, _, err = train(capsys, "--data", corpus, "--out-dir", tmp_path / "new", *TINY, "--data-changed")
    assert code == 2 and "--data-changed goes with --resume" in one_line(err)


def test_a_checkpoint_from_before_the_fingerprint_still_resumes(tmp_path, capsys, trained):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    path = folder / checkpoint.TRAINING_STATE_NAME
    state = torch.load(path, weights_only=True)
    del state["data_fingerprint"]
    torch.save(state, path)
    code, out, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", 21)
    assert code == 0 and "steps 20 -> 21" in out, err


# ----------------------------------------------------------------------------------------------- damage


@pytest.mark.parametrize("damage", ["truncated-weights", "missing-config", "stale-weights"])
def test_a_damaged_model_is_said_and_rewritten_from_the_resume_state(tmp_path, capsys, trained, damage):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    if damage == "truncated-weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "missing-config":
        (folder / "config.json").unlink()
    else:  # a model file of another step: changed weights
        model, _ = load_pretrained(folder)
        with torch.no_grad():
            model.ln_f.bias.add_(1.0)
        model.save_pretrained(folder)
    code, out, err = train(capsys, "--out-dir", folder, "--resume")  # already at --max-iters
    assert code == 0 and err == ""
    assert f"note: {folder}'s model files are damaged or incomplete" in out and "rewriting them" in out
    assert "nothing to do" not in out
    assert same(weights(folder), checkpoint.load_training_state(folder)["model"])


def test_a_damaged_resume_state_is_one_line(tmp_path, capsys, trained):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    (folder / checkpoint.TRAINING_STATE_NAME).write_bytes(b"PK\x03\x04 not really")
    before = folder_digest(folder)
    code, out, err = train(capsys, "--out-dir", folder, "--resume")
    assert code == 2 and "cannot be read" in one_line(err) and "the model beside it is untouched" in err
    assert "nothing to do" not in out and folder_digest(folder) == before


# ----------------------------------------------------------------------------------------------- not text


@pytest.fixture
def alarm():
    """A test that would hang (reading a pipe) fails after 60 s instead."""
    def timeout(signum, frame):
        raise TimeoutError("hung")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["device", "pipe", "binary"])
def test_only_a_regular_text_file_is_read(tmp_path, capsys, alarm, kind, small_text):
    from seed_gpt import build_seed_gpt

    seed = tmp_path / "seed.pt"
    torch.save(build_seed_gpt(vocab=len(set(small_text)), embd=16, heads=2, layers=1, block=8).state_dict(), seed)
    text = tmp_path / "input.txt"
    text.write_text(small_text, encoding="utf-8")
    if kind == "device":
        path, said = Path("/dev/zero"), "/dev/zero: is a character device, not a regular file"
    elif kind == "pipe":
        path, said = tmp_path / "pipe", "pipe: is a pipe, not a regular file"
        os.mkfifo(path)
    else:
        path, said = tmp_path / "photo.txt", "photo.txt: is binary data, not text"
        path.write_bytes(bytes(range(256)) * 40)
    code, _, err = train(capsys, "--data", path, "--out-dir", tmp_path / "out", *TINY)
    assert code == 2 and said in one_line(err) and "iconv" not in err
    capsys.readouterr()
    assert cli.main(["convert-seed", str(seed), "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    assert cli.main(["convert-seed", str(path), "--data", str(text), "--out", str(tmp_path / "o")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and "Traceback" not in "".join(errors)
    assert said in errors[0] and (said if kind != "binary" else "photo.txt: not a PyTorch checkpoint") in errors[1]
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_temperature_nan_is_refused_before_anything_is_printed(model_dir, capsys):
    code = cli.main(["generate", str(model_dir), "--prompt", "Speak", "--temperature", "nan"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "temperature must be a finite number, got nan" in one_line(err)


# ----------------------------------------------------------------------------------------------- issue 22: the edges


def user_folder(path: Path) -> Path:
    """A project folder of the user's: their own README.md and loss.png, notes, a config.json of something else."""
    path.mkdir()
    (path / "README.md").write_text("# my project\n")
    (path / "loss.png").write_bytes(b"my own plot")
    (path / "notes.txt").write_text("mine\n")
    return path


def test_a_folder_of_the_users_is_refused_naming_the_files_a_run_would_replace(tmp_path, capsys, corpus):
    """`--out-dir .` in a project folder: was a card over the user's README.md and a plot over loss.png, exit 0."""
    folder = user_folder(tmp_path / "project")
    before = folder_digest(folder)
    code, out, err = train(capsys, "--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 2)
    assert code == 2 and out == ""
    assert f"--out-dir {folder} holds files of yours that the new model's files would replace (README.md, " \
           "loss.png)" in one_line(err) and "--overwrite" in err
    assert folder_digest(folder) == before

    (folder / "README.md").unlink()
    (folder / "loss.png").unlink()
    (folder / "config.json").write_text('{"name": "my-app"}\n')  # not a model's: still the user's
    code, _, err = train(capsys, "--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 2)
    assert code == 2 and "would replace (config.json)" in one_line(err) and "already holds a model" not in err

    (folder / "config.json").unlink()
    code, _, err = train(capsys, "--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 2)
    assert code == 0, err  # nothing of the user's in the way: the model goes beside their files
    assert (folder / "notes.txt").read_text() == "mine\n" and trainer_state(folder)["global_step"] == 2
    load_pretrained(folder)


def test_overwrite_in_a_folder_of_the_users_replaces_the_named_files_in_place(tmp_path, capsys, corpus):
    """With --overwrite the user's named files are replaced, file by file: the folder is not swapped for a copy
    (a project folder keeps its identity, its other files and subfolders untouched)."""
    folder = user_folder(tmp_path / "project")
    (folder / "src").mkdir()
    (folder / "src" / "main.py").write_text("print('hi')\n")
    identity, notes = folder.stat().st_ino, (folder / "notes.txt").stat().st_ino
    code, _, err = train(capsys, "--data", corpus, "--out-dir", folder, *TINY, "--max-iters", 2, "--overwrite")
    assert code == 0, err
    assert folder.stat().st_ino == identity and (folder / "notes.txt").stat().st_ino == notes
    assert (folder / "src" / "main.py").read_text() == "print('hi')\n" and hidden_siblings(folder) == []
    assert "library_name" in (folder / "README.md").read_text()


def test_a_run_never_replaces_a_users_train_txt_with_its_text(tmp_path, capsys, corpus):
    """train.txt is the run's file only for a text given in memory (the demo's): the user's own train.txt, the
    --data of a run into the same folder, is theirs, and in the way of a run that would save its text there."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.txt").write_text(corpus.read_text())
    code, _, err = train(capsys, "--data", folder / "train.txt", "--out-dir", folder, *TINY, "--max-iters", 2)
    assert code == 0, err
    assert (folder / "train.txt").read_text() == corpus.read_text()
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.txt").write_text("mine")
    with pytest.raises(checkpoint.CheckpointError, match=r"would replace \(train.txt\)"):
        training.Trainer(training.TrainingSettings(**SETTINGS), text=corpus.read_text(), out_dir=other)
    assert (other / "train.txt").read_text() == "mine"


def test_an_empty_out_dir_is_refused(tmp_path, capsys, corpus, monkeypatch, seed_checkpoint):
    """`--out-dir ""` meant the working directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        training.main(["--data", str(corpus), "--out-dir", "", *TINY])
    assert exit_info.value.code == 2
    assert "argument --out-dir: '' is not a folder name" in one_line(capsys.readouterr().err)
    _, path, text = seed_checkpoint
    with pytest.raises(SystemExit):
        cli.main(["convert-seed", str(path), "--data", str(text), "--out", ""])
    assert "argument --out: '' is not a folder name" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "config.json").exists() and not (tmp_path / "trainer_state.json").exists()


@pytest.fixture
def seed_checkpoint(tmp_path, small_text):
    from seed_gpt import build_seed_gpt

    torch.manual_seed(5)
    seed = build_seed_gpt(vocab=len(set(small_text)), embd=16, heads=2, layers=1, block=8)
    path, text = tmp_path / "seed.pt", tmp_path / "input.txt"
    torch.save(seed.state_dict(), path)
    text.write_text(small_text, encoding="utf-8")
    return seed, path, text


@pytest.mark.parametrize("before", ["a trained model", "the user's files only"])
def test_convert_seed_overwrite_keeps_the_users_files(tmp_path, capsys, trained, seed_checkpoint, before):
    """convert-seed --overwrite replaced the whole folder: the user's notes beside a model went with it."""
    _, path, text = seed_checkpoint
    folder = tmp_path / "model"
    if before == "a trained model":
        shutil.copytree(trained, folder)
        (folder / "notes.txt").write_text("mine\n")
    else:
        user_folder(folder)
    capsys.readouterr()
    assert cli.main(["convert-seed", str(path), "--data", str(text), "--out", str(folder), "--overwrite"]) == 0
    names = {p.name for p in folder.iterdir()}
    assert (folder / "notes.txt").read_text() == "mine\n"
    if before == "a trained model":  # nothing of the old model stays: its card, state, plot, resume state
        assert not names & {"README.md", "loss.png", "trainer_state.json", checkpoint.TRAINING_STATE_NAME}
    else:  # the conversion writes no card or plot: the user's stay
        assert (folder / "README.md").read_text() == "# my project\n" and (folder / "loss.png").exists()
    load_pretrained(folder)


def test_a_push_never_writes_into_the_folder_it_stages(tmp_path, trained, hub_server, monkeypatch):
    """`tinygpt push` stages hard links to the folder's files; the card it writes must be a new file even where a
    file of the folder lands under the card's name (readme.md on a case-insensitive disk, simulated here)."""
    from tinygpt import model_repo

    folder = tmp_path / "model"
    shutil.copytree(trained, folder)
    (folder / "README.md").write_text("# my own notes about this model\n")
    (folder / "notes.txt").write_text("mine\n")
    before = folder_digest(folder)
    chosen = model_repo.select_files

    def with_the_readme(model_dir, include_training_state=False):
        files, left_out = chosen(model_dir, include_training_state)
        return files + ["README.md"], left_out

    monkeypatch.setattr(model_repo, "select_files", with_the_readme)
    result = model_repo.push_model(folder, "me/tiny", token="hf_test", endpoint=hub_server.url)
    assert result.changed and folder_digest(folder) == before
    assert hub_server.read_file("me/tiny", "notes.txt") == b"mine\n"
    assert b"library_name" in hub_server.read_file("me/tiny", "README.md")


def run_train_from(cwd: Path, *args, **kwargs):
    from train_helpers import run_train

    cwd.mkdir(exist_ok=True)
    return run_train(list(args), cwd=cwd, **kwargs)


@pytest.mark.slow
def test_a_fine_tune_of_a_model_inside_the_project_runs_from_any_working_directory(tmp_path, corpus):
    """--init-from /abs/path/inside/the/project was recorded relative to the project, then opened relative to the
    working directory: "no such folder, and no such repo reachable on the Hub". Opened as given, recorded so that
    the card's command runs from the project root, resumed from a third directory."""
    from train_helpers import REPO

    base = REPO / "checkpoints" / "tinyshakespeare"
    out = tmp_path / "fine-tuned"
    result = run_train_from(tmp_path / "elsewhere", "--data", corpus, "--out-dir", out, "--init-from", base,
                            "--batch-size", 2, "--eval-iters", 1, "--max-iters", 2, "--eval-interval", 2,
                            "--threads", 1)
    assert result.returncode == 0, result.stderr
    state = trainer_state(out)
    assert state["training_args"]["init_from"] == "checkpoints/tinyshakespeare"
    assert "--init-from checkpoints/tinyshakespeare" in state["command"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "base_model:" not in card  # a local folder is not a Hub model, whatever the working directory
    result = run_train_from(tmp_path / "third", "--out-dir", out, "--resume", "--max-iters", 3)
    assert result.returncode == 0 and "steps 2 -> 3" in result.stdout, result.stderr


@pytest.mark.slow
def test_a_dataset_inside_the_project_resumes_from_any_working_directory(tmp_path):
    """--dataset recorded relative to the project: a resumed run opens it from the project root."""
    pytest.importorskip("datasets")
    from train_helpers import REPO, TINY

    out = tmp_path / "run"
    dataset = REPO / "data" / "tinyshakespeare.txt"
    result = run_train_from(tmp_path / "a", "--dataset", dataset, "--out-dir", out, *TINY, "--max-iters", 1,
                            "--eval-interval", 1)
    assert result.returncode == 0, result.stderr
    assert trainer_state(out)["training_args"]["dataset"] == "data/tinyshakespeare.txt"
    result = run_train_from(tmp_path / "b", "--out-dir", out, "--resume", "--max-iters", 2)
    assert result.returncode == 0 and "steps 1 -> 2" in result.stdout, result.stderr


@pytest.mark.slow
def test_the_demo_fine_tunes_the_bundled_model_when_started_from_another_directory(tmp_path):
    """`python path/to/app.py` (the bundled checkpoint, inside the project) from another working directory:
    "fine-tune the model being served" failed to find the model it serves."""
    from gradio_client import Client

    from app_helpers import TINY_TEXT, AppServer, app_env

    work = tmp_path / "elsewhere"
    work.mkdir()
    server = AppServer(["--train-max-seconds", "60"], tmp_path / "server.log",
                       env=app_env(TMPDIR=str(tmp_path), GRADIO_TEMP_DIR=str(tmp_path / "gradio"), HF_HUB_OFFLINE="1"),
                       timeout=180)
    server.cwd = work
    with server:
        client = Client(server.url, verbose=False)
        job = client.submit(TINY_TEXT * 40, "", 60, 2, "served", api_name="/train")
        job.result(timeout=240)
        final = job.outputs()[-1]
    assert final["status"] == "finished" and final["start_from"] == "served", (final, server.log())


def test_impossible_sizes_are_refused_before_anything_is_allocated(tmp_path, capsys, corpus):
    """--n-layer 10^9 grew memory until the machine gave out; --n-embd and --batch-size 10^9 ended in the
    allocator's traceback. Each is one line naming the flag and the size that would fit, at once."""
    import resource

    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for flag in ("--n-embd", "--batch-size", "--block-size", "--eval-batch-size", "--n-layer"):
        started = time.perf_counter()
        code, out, err = train(capsys, "--data", corpus, "--out-dir", tmp_path / "out", *TINY, flag, 10**9)
        assert code == 2 and out == "" and time.perf_counter() - started < 30
        line = one_line(err)
        assert line.startswith(f"train.py: error: {flag} 1000000000 does not fit in memory: the run needs about ")
        fits = int(line.split(f"at most {flag} ")[1].split()[0])
        assert 1 <= fits < 10**9
        assert not (tmp_path / "out").exists()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - grown < 200 * 1024  # kB: nothing was allocated


def test_the_size_that_is_said_to_fit_fits_and_one_more_does_not(monkeypatch):
    from tinygpt import memory
    from tinygpt.settings import TrainingSettings

    settings = TrainingSettings(n_layer=100)
    budget = memory.training_bytes({k: getattr(settings, k) for k in (*memory.SIZE_FLAGS, "n_head")}, 1) // 10
    monkeypatch.setattr(memory, "available_bytes", lambda device: (budget, "available"))
    with pytest.raises(memory.DoesNotFit, match=r"^--n-layer 100 does not fit in memory") as refused:
        memory.check_fits(settings, torch.device("cpu"))
    fits = int(str(refused.value).split("at most --n-layer ")[1].split()[0])
    memory.check_fits(TrainingSettings(n_layer=fits), torch.device("cpu"))
    with pytest.raises(memory.DoesNotFit):
        memory.check_fits(TrainingSettings(n_layer=fits + 1), torch.device("cpu"))


def test_the_engine_checks_the_size_for_a_fine_tune_and_for_the_train_tab(tmp_path, capsys, corpus, monkeypatch):
    """--init-from: the base model's size (its config, before loading it); the demo's Train tab runs the same
    engine check (its job turns the engine's line into the page's)."""
    from tinygpt import memory
    from train_helpers import REPO

    monkeypatch.setattr(memory, "available_bytes", lambda device: (1_000_000, "available"))
    base = REPO / "checkpoints" / "tinyshakespeare"
    code, _, err = train(capsys, "--data", corpus, "--out-dir", tmp_path / "ft", "--init-from", base, "--threads", 1)
    assert code == 2 and "--init-from checkpoints/tinyshakespeare (110,145 parameters) does not fit in memory" \
        in one_line(err) and "even with --batch-size 1; fine-tune a smaller model" in err

    from tinygpt.demo import BadInput
    from tinygpt.train_tab.job import Job
    from tinygpt.train_tab.request import RunRequest, check_text

    text = check_text(corpus.read_text(), "words.txt", block_size=32)
    job = Job(RunRequest(text, (2, 4, 64, 32), 30), tmp_path / "run" / "x")
    with pytest.raises(BadInput, match="Cannot train on words.txt: --.* does not fit in memory"):
        job.work(lambda event: None, threading.Event())


def test_a_staging_folder_left_by_a_killed_overwrite_is_removed_and_said(tmp_path, capsys, trained, corpus,
                                                                         seed_checkpoint):
    """A kill at the moment of an --overwrite swap left a hidden `.NAME.tmp-*` beside the folder: the next start
    (any of train.py's, convert-seed's) removes it and says so in one line."""
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    trainer = trainer_for(["--data", corpus, "--out-dir", folder, *TINY, "--n-embd", 32, "--max-iters", 5,
                           "--eval-interval", 5, "--overwrite"])
    try:
        trainer.evaluate(0)
        for n in itertools.count():  # the first kill that leaves the new folder half-staged beside the old one
            assert run_killed_at(n, lambda: trainer.save(0)) == KILLED
            if hidden_siblings(folder):
                break
    finally:
        trainer.close()
    [leftover] = hidden_siblings(folder)
    assert leftover.startswith(".run.tmp-")
    code, out, err = train(capsys, "--out-dir", folder, "--resume", "--max-iters", 21)
    assert code == 0 and "steps 20 -> 21" in out, err  # the old model, intact
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == [f"note: removed {leftover} beside {folder}: left by an --overwrite that was killed before "
                     f"it finished cleaning up; {folder} itself is whole"]
    assert hidden_siblings(folder) == []

    _, path, text = seed_checkpoint
    (tmp_path / ".model.tmp-x").mkdir()
    capsys.readouterr()
    assert cli.main(["convert-seed", str(path), "--data", str(text), "--out", str(tmp_path / "model")]) == 0
    assert capsys.readouterr().out.startswith(f"note: removed .model.tmp-x beside {tmp_path / 'model'}")
    assert hidden_siblings(tmp_path / "model") == []


def test_a_seed_out_of_range_names_the_flag(tmp_path, capsys, corpus):
    code, _, err = train(capsys, "--data", corpus, "--out-dir", tmp_path / "out", *TINY, "--seed", 10**30)
    assert code == 2 and f"--seed must be between 0 and 4294967295 (2**32 - 1), got {10**30}" in one_line(err)
    assert "Overflow" not in err and not (tmp_path / "out").exists()


def test_an_impossible_push_to_hub_repo_id_is_refused_before_training(tmp_path, capsys, corpus):
    """Was found after the whole training, and the retry command repeated the impossible id."""
    code, out, err = train(capsys, "--data", corpus, "--out-dir", tmp_path / "out", *TINY, "--push-to-hub",
                           "me/my model")
    assert code == 2 and out == "" and not (tmp_path / "out").exists()
    assert "--push-to-hub 'me/my model' is not a valid Hub repo id" in one_line(err) and "tinygpt push" not in err
