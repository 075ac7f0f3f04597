"""Shared test setup: a quiet, offline environment and small tinygpt models to test against."""

import os

# Before anything imports gradio or huggingface_hub: no telemetry, no network, no prompts.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import signal  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n"
)


@pytest.fixture(scope="session")
def small_text():
    """A small corpus with spaces, newlines and punctuation (its sorted characters are the vocabulary)."""
    return TEXT


@pytest.fixture(scope="session")
def tokenizer(small_text):
    from tinygpt import char_tokenizer

    return char_tokenizer(small_text)


def make_model(vocab_size, seed=0, **overrides):
    """A small TinyGPT with random (but seeded) weights, in eval mode."""
    from tinygpt import TinyGPTConfig, TinyGPTForCausalLM

    settings = dict(vocab_size=vocab_size, n_embd=32, n_head=4, n_layer=2, block_size=16)
    settings.update(overrides)
    torch.manual_seed(seed)
    return TinyGPTForCausalLM(TinyGPTConfig(**settings)).eval()


@pytest.fixture
def model(tokenizer):
    return make_model(len(tokenizer))


@pytest.fixture
def model_dir(tmp_path, model, tokenizer):
    """A saved tinygpt folder (model + tokenizer), as train.py or convert-seed would leave it."""
    path = tmp_path / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A few kilobytes of lower-case words (train_helpers.write_corpus): the training tests' text file."""
    from train_helpers import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus") / "words.txt")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, corpus):
    """A tiny model trained by train.py for 20 steps, evaluated and checkpointed at 0, 10 and 20. Shared by the
    training tests: copy it before changing it."""
    from tinygpt import training
    from train_helpers import TINY

    out = tmp_path_factory.mktemp("trained") / "run"
    assert training.main(["--data", str(corpus), "--out-dir", str(out), *TINY, "--max-iters", "20",
                          "--eval-interval", "10"]) == 0
    return out


@pytest.fixture(scope="session")
def served_model_dir(tmp_path_factory):
    """The model the app tests' server serves: small and random, on app_helpers.TINY_TEXT's characters (the seed's
    size: slow enough that a browser's Stop lands before 1,000 characters are written)."""
    from app_helpers import make_model_dir

    return make_model_dir(tmp_path_factory.mktemp("served") / "tiny", n_embd=64)


@pytest.fixture(scope="session")
def demo_hub(tmp_path_factory):
    """A local Hub for the demo's pushes (the server's HF_ENDPOINT), shared by the app tests."""
    from hub_server import HubServer

    with HubServer(tmp_path_factory.mktemp("demo_hub")) as server:
        yield server


@pytest.fixture(scope="session")
def server(served_model_dir, demo_hub, tmp_path_factory):
    """`python app.py --model <served_model_dir>` on a free port, one for every app test (API, Train tab, browser):
    starting one costs seconds, and each test uses its own client session. Its temporary files (the Train tab's
    runs) are under `server.tmp`; pushes go to `demo_hub`; its time budget cap is `server.max_seconds`. MODEL_ID
    names a folder that does not exist: the server only comes up because --model wins over it."""
    from app_helpers import AppServer, app_env

    tmp = tmp_path_factory.mktemp("server_tmp")
    env = app_env(MODEL_ID=str(served_model_dir.parent / "not-this-one"), HF_ENDPOINT=demo_hub.url,
                  HF_HOME=str(tmp / "hf_home"), TMPDIR=str(tmp), GRADIO_TEMP_DIR=str(tmp / "gradio"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(name, None)  # a push must use the visitor's token, never the server's
    max_seconds = 60
    args = ["--model", str(served_model_dir), "--train-max-seconds", str(max_seconds)]
    with AppServer(args, tmp_path_factory.mktemp("server_logs") / "server.log", env=env, timeout=180) as s:
        s.tmp, s.served, s.max_seconds = tmp, served_model_dir, max_seconds
        yield s


@pytest.fixture
def hub_server(tmp_path):
    """A local Hugging Face Hub (tests/hub_server.py) on a free port, empty, stopped after the test.

    Point the real client at it with `HfApi(endpoint=hub_server.url)` / `hf_hub_download(..., endpoint=...)`,
    or with HF_ENDPOINT=hub_server.url in a subprocess (huggingface_hub reads HF_ENDPOINT at import time).
    """
    from hub_server import HubServer  # tests/ is on sys.path (pytest's default "prepend" import mode)

    with HubServer(tmp_path / "hub_server") as server:
        yield server


# ------------------------------------------------------------------------------------------- no process outlives
# A test that fails, by pytest-timeout's per-test limit (pyproject.toml) or otherwise, must not leave a server or a
# train.py behind it: the processes a test started during its call that are still running afterwards are killed,
# with their own children. Fixtures' processes (started in setup) are their fixtures' to stop.


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from Linux's /proc (empty elsewhere: nothing is killed)."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after "pid (command name)": state, ppid, ...
            table[int(name)] = (int(fields[1]), fields[0])
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return table


def _running_children(table: dict[int, tuple[int, str]], parent: int) -> set[int]:
    return {pid for pid, (ppid, state) in table.items() if ppid == parent and state not in ("Z", "X")
            and not _is_shared_pool(pid)}


def _is_shared_pool(pid: int) -> bool:
    """torch.compile's worker pool (on machines with enough cores) lives as long as this process, on purpose."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"torch._inductor.compile_worker" in f.read()
    except OSError:
        return False


def _descendants(table: dict[int, tuple[int, str]], pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        children = [child for child, (ppid, _) in table.items() if ppid == current]
        found += children
        todo += children
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    before = _running_children(_process_table(), os.getpid())
    try:
        return (yield)
    finally:
        table = _process_table()
        left = _running_children(table, os.getpid()) - before
        for pid in left:
            for victim in [pid, *_descendants(table, pid)]:
                try:
                    os.kill(victim, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if left:
            warnings.warn(f"{item.nodeid} left {len(left)} process(es) running; killed: {sorted(left)}", stacklevel=1)
