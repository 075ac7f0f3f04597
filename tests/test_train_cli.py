"""train.py as a command, in real processes: output, signals, SIGKILL at any instant, torchrun, loading elsewhere."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from tinygpt import checkpoint
from no_tinygpt import run_without_tinygpt
from tinygpt.loading import load_pretrained
from train_helpers import (
    REPO, TINY, TRAIN_PY, child_env, run_train, start_train, trainer_state, without_elapsed,
)

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout=120.0, proc=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"train.py exited early with {proc.returncode}: {proc.communicate()[1]}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_plain_output_and_a_folder_that_loads_without_tinygpt(tmp_path, corpus):
    out_dir = tmp_path / "run"
    result = run_train(["--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 20, "--eval-interval", 10],
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings, progress bars or advice in CI logs
    lines = result.stdout.splitlines()
    assert lines.pop(0).startswith("train.py: starting")  # at once, before the imports (issue 22)
    assert lines[0].startswith("training 4,") and "1 process(es) x batch 4 x 8 characters per step" in lines[0]
    assert [line.split(":")[0] for line in lines[1:4]] == ["step 0", "step 10", "step 20"]
    assert all(", val " in line for line in lines[1:4]) and lines[4].startswith("done: step 20")
    assert len(lines) == 5

    # as on a machine with only torch + transformers (run_without_tinygpt also checks tinygpt was never imported)
    remote = run_without_tinygpt(
        f"""
        import json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(out_dir)!r}, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained({str(out_dir)!r}, trust_remote_code=True)
        ids = tokenizer("the quick brown fox", return_tensors="pt")["input_ids"][:, -8:]
        with torch.no_grad():
            logits = model(ids).logits
        print(json.dumps({{"module": type(model).__module__, "ids": ids.tolist(), "logits": logits[0, -1].tolist()}}))
        """,
        cwd=tmp_path, env=child_env(HF_HOME=str(tmp_path / "hf_home")), timeout=120,
    )
    assert remote["module"].startswith("transformers_modules.")
    model, _ = load_pretrained(out_dir)
    with torch.no_grad():
        logits = model(torch.tensor(remote["ids"])).logits[0, -1]
    assert torch.allclose(logits, torch.tensor(remote["logits"]), atol=1e-5)


def test_sigterm_saves_the_current_step_and_exits_0(tmp_path, corpus):
    out_dir = tmp_path / "run"
    proc = start_train(["--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 1_000_000,
                        "--eval-interval", 100_000], cwd=tmp_path)
    wait_for(lambda: (out_dir / "trainer_state.json").exists(), proc=proc)  # the step-0 checkpoint
    time.sleep(0.5)  # some steps past it
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM at step" in out and f"--out-dir {out_dir} --resume" in out
    step = trainer_state(out_dir)["global_step"]
    assert step > 0 and checkpoint.load_training_state(out_dir)["step"] == step
    load_pretrained(out_dir)

    result = run_train(["--out-dir", out_dir, "--resume", "--max-iters", step + 5], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"steps {step} -> {step + 5}" in result.stdout
    assert trainer_state(out_dir)["global_step"] == step + 5


def test_sigkill_at_any_instant_leaves_a_loadable_resumable_folder(tmp_path, corpus):
    """Kill -9 a run that checkpoints at every step (so most instants fall inside a save), three times."""
    out_dir = tmp_path / "run"
    args = ["--data", corpus, "--out-dir", out_dir, *TINY, "--eval-interval", 1, "--eval-iters", 1]
    steps = []
    for delay in (0.05, 0.4, 0.9):
        resume = ["--resume"] if steps else []
        proc = start_train([*args, *resume, "--max-iters", 1_000_000], cwd=tmp_path)
        wait_for(lambda: len(steps) == 0 and (out_dir / "training_state.pt").exists() or
                 len(steps) > 0 and trainer_state(out_dir)["global_step"] > steps[-1], proc=proc)
        time.sleep(delay)
        proc.kill()
        proc.communicate()
        load_pretrained(out_dir)  # whole files only: config, weights and tokenizer agree
        state = checkpoint.load_training_state(out_dir)
        assert not steps or state["step"] >= steps[-1]
        steps.append(state["step"])

    result = run_train([*args, "--resume", "--max-iters", steps[-1] + 3], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log = trainer_state(out_dir)["log_history"]
    assert trainer_state(out_dir)["global_step"] == steps[-1] + 3
    assert [e["step"] for e in log] == list(range(steps[-1] + 4))  # one eval per step, none lost or repeated
    assert not (out_dir / checkpoint.STAGING_NAME).exists()


def torchrun(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(TRAIN_PY),
         *map(str, args)],
        cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240,
    )


def test_two_processes_with_torchrun_and_exact_resume(tmp_path, corpus):
    common = ["--data", corpus, *TINY, "--dropout", "0.1", "--eval-interval", 10]
    straight, split = tmp_path / "straight", tmp_path / "split"
    result = torchrun([*common, "--out-dir", straight, "--max-iters", 20], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("step 10: train") == 1  # only the main process reports
    assert "2 process(es) x batch 4" in result.stdout
    state = trainer_state(straight)
    assert state["num_processes"] == 2 and state["training_args"]["num_processes"] == 2
    assert state["global_step"] == 20
    assert "torchrun --nproc-per-node 2 train.py" in (straight / "README.md").read_text(encoding="utf-8")
    assert len(torch.load(straight / "training_state.pt", weights_only=True)["rng"]) == 2  # one per process
    a, _ = load_pretrained(straight)

    assert torchrun([*common, "--out-dir", split, "--max-iters", 10], tmp_path).returncode == 0
    result = torchrun(["--out-dir", split, "--resume", "--max-iters", 20], tmp_path)
    assert result.returncode == 0, result.stderr
    b, _ = load_pretrained(split)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert (pa - pb).abs().max() < 1e-5, name
    assert without_elapsed(trainer_state(split)["log_history"]) == without_elapsed(state["log_history"])


def test_runs_from_another_folder_with_the_bundled_corpus(tmp_path):
    """No --data: tiny Shakespeare from the repository, whatever the working folder."""
    assert (REPO / "data" / "tinyshakespeare.txt").is_file()
    out_dir = tmp_path / "run"
    result = run_train(["--out-dir", out_dir, *TINY, "--max-iters", 0], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    state = trainer_state(out_dir)
    assert state["data"]["name"] == "tinyshakespeare.txt" and state["data"]["characters"] == 1_115_394
    assert state["data"]["vocab_size"] == 65 and state["global_step"] == 0
    shutil.rmtree(out_dir)


def test_a_failed_push_keeps_the_model_says_so_once_prints_the_retry_and_exits_3(tmp_path, corpus):
    """issue 12, item 8: the local Hub refuses the token (401); the trained folder stays, and the printed
    `tinygpt push` command uploads it once the Hub accepts."""
    from hub_server import HubServer

    out_dir = tmp_path / "run"
    with HubServer(tmp_path / "hub", fail_with=401) as server:
        env = {"HF_ENDPOINT": server.url, "HF_TOKEN": "hf_refused", "HF_HOME": str(tmp_path / "hf_home"),
               "HF_HUB_OFFLINE": "0"}
        result = run_train(["--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 10, "--eval-interval", 10,
                            "--push-to-hub", "tester/tiny"], cwd=tmp_path, env=env)
        assert result.returncode == 3, result.stderr
        assert "done: step 10" in result.stdout and trainer_state(out_dir)["global_step"] == 10
        errors = result.stderr.splitlines()
        assert len(errors) == 1 and "Traceback" not in result.stderr  # issue 22: one line, not two
        assert errors[0].startswith("train.py: push to tester/tiny failed: ") and "401 Unauthorized" in errors[0]
        assert result.stderr.count("unchanged") + result.stderr.count("intact") == 1  # said once
        retry = errors[0].split("upload it with: ")[1]
        assert retry == f"tinygpt push {out_dir} tester/tiny"
        load_pretrained(out_dir)

        server.fail_with = None
        pushed = subprocess.run([sys.executable, "-m", "tinygpt.cli", *shlex.split(retry)[1:]], cwd=tmp_path,
                                env=child_env(**env), capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0, pushed.stderr
        assert server.read_file("tester/tiny", "model.safetensors") == (out_dir / "model.safetensors").read_bytes()


def test_a_diverging_run_is_one_line_and_exit_4_in_a_real_process(tmp_path, corpus):
    """The issue's `--learning-rate 1e9`: was a 33-line traceback from the sample, exit 1, repeated by --resume."""
    out_dir = tmp_path / "run"
    result = run_train(["--data", corpus, "--out-dir", out_dir, *TINY, "--max-iters", 200, "--eval-interval", 50,
                        "--learning-rate", "1e9"], cwd=tmp_path)
    assert result.returncode == 4 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("train.py: error: training diverged: the loss became nan at step ")
    assert trainer_state(out_dir)["global_step"] == 0
    load_pretrained(out_dir)
