"""Helpers for the app.py tests and benchmark: tiny model folders, a real server in a subprocess, a raw SSE client.

`AppServer` runs `python app.py --model ... --port ...` exactly as a user would and waits until it answers.
`stream_generate` speaks gradio's queue protocol (POST queue/join, then the SSE stream of queue/data) with nothing
in between, so the tests can see every streamed message and when it arrived; gradio_client only hands back the
final value, or batches of intermediate ones.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app.py"

# A few lines of the kind of text the bundled model is trained on: letters, punctuation, newlines.
TINY_TEXT = """\
First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

ROMEO:
What light through yonder window breaks? It is the east, and Juliet is the sun!
To be, or not to be; that is the question.
"""


def app_env(**extra: str) -> dict:
    """The environment for app.py subprocesses: quiet, offline-friendly, never prompting."""
    env = dict(os.environ)
    for name in ("MODEL_ID", "HF_ENDPOINT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        env.pop(name, None)
    env.update(
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        PYTHONUNBUFFERED="1",
        CI=env.get("CI", "true"),
    )
    env.update(extra)
    return env


def make_model_dir(path: Path, text: str = TINY_TEXT, seed: int = 0, **config) -> Path:
    """A saved tinygpt folder (model + tokenizer) with random weights: enough to test everything but quality."""
    import torch

    from tinygpt import TinyGPTConfig, TinyGPTForCausalLM, char_tokenizer

    tokenizer = char_tokenizer(text)
    torch.manual_seed(seed)
    settings = dict(vocab_size=len(tokenizer), n_embd=32, n_head=4, n_layer=2, block_size=32)
    settings.update(config)
    model = TinyGPTForCausalLM(TinyGPTConfig(**settings))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py ARGS --port P` in a subprocess; `url` once it answers, stopped on exit.

    Output goes to `log_path` (a file, so a chatty server can never block on a full pipe).
    """

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None, timeout: float = 90.0,
                 python: str = sys.executable, app: Path = APP):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(python), str(app), *args, "--host", "127.0.0.1", "--port", str(self.port)]
        self.cwd = Path(app).parent  # the repository, or a Space's folder
        self.log_path = Path(log_path)
        self.env = env if env is not None else app_env()
        self.timeout = timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "AppServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
        )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"app.py exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/config", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise TimeoutError(f"app.py did not answer within {self.timeout} s:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def config(self) -> dict:
        return httpx.get(self.url + "/config", timeout=10).json()


def fn_index(config: dict, api_name: str) -> int:
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == api_name:
            return dependency["id"]
    raise KeyError(f"no endpoint named {api_name!r}")


def apply_diff(value, diff):
    """Apply one of gradio's streaming diffs (sse_v3 sends `[[op, path, value], ...]` after the first message)."""
    for op, path, arg in diff:
        if path:  # the textbox value is a plain string: every edit is at the root
            raise NotImplementedError(f"diff at a nested path: {path}")
        if op == "replace":
            value = arg
        elif op == "append":
            value = value + arg
        else:
            raise NotImplementedError(f"diff op {op!r}")
    return value


def stream_generate(url: str, inputs: list, fn: int, timeout: float = 60.0) -> dict:
    """Call /generate through the raw queue protocol and record every message as it arrives.

    Returns {"texts": [(seconds since the request was sent, text so far), ...], "final": text or None,
    "error": message or None, "started": seconds to `process_starts`, "completed": seconds to the end}.
    """
    session = uuid.uuid4().hex
    record = {"texts": [], "final": None, "error": None, "started": None, "completed": None}
    with httpx.Client(timeout=timeout) as client:
        # Join, then read the session's event stream: the server keeps the messages until the stream opens.
        t0 = time.perf_counter()
        join = client.post(
            f"{url}/gradio_api/queue/join",
            json={"data": inputs, "fn_index": fn, "session_hash": session, "event_data": None, "trigger_id": None},
        )
        join.raise_for_status()
        text = None
        with client.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.perf_counter() - t0
                message = json.loads(line[len("data:") :])
                kind = message.get("msg")
                if kind == "process_starts":
                    record["started"] = now
                elif kind == "process_generating":
                    data = message["output"]["data"][0]
                    text = data if text is None or isinstance(data, str) else apply_diff(text, data)
                    record["texts"].append((now, text))
                elif kind == "process_completed":
                    record["completed"] = now
                    output = message.get("output") or {}
                    if message.get("success"):
                        data = output["data"][0]
                        record["final"] = data if isinstance(data, str) or text is None else apply_diff(text, data)
                    else:
                        record["error"] = output.get("error") or "failed"
                    break
                elif kind == "close_stream":
                    break
    return record


def call_raw(url: str, api_name: str, inputs: list, timeout: float = 60.0) -> dict:
    """Any endpoint through the raw queue protocol, with the inputs as whatever JSON they are (not what
    gradio_client would make of them). Lone surrogates go out as JSON escapes ("\\ud800"), as a browser's
    JSON.stringify sends them. Returns {"success", "error", "outputs": every streamed output's data}. An endpoint
    with a validator (the Train button's) checks its request when it joins the queue: a refusal there is an HTTP
    400/422 whose `detail` is the error."""
    fn = fn_index(httpx.get(url + "/config", timeout=10).json(), api_name)
    session = uuid.uuid4().hex
    body = json.dumps({"data": inputs, "fn_index": fn, "session_hash": session, "event_data": None,
                       "trigger_id": None})  # ensure_ascii: "\ud800" stays an escape, not invalid UTF-8
    result = {"success": None, "error": None, "outputs": []}
    with httpx.Client(timeout=timeout) as client:
        joined = client.post(f"{url}/gradio_api/queue/join", content=body, headers={"content-type": "application/json"})
        if joined.status_code in (400, 422):
            detail = joined.json().get("detail")
            return dict(result, success=False, error=detail if isinstance(detail, str) else json.dumps(detail))
        joined.raise_for_status()
        with client.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[len("data:"):])
                if message.get("msg") == "process_generating":
                    result["outputs"].append(message["output"].get("data"))
                elif message.get("msg") == "process_completed":
                    result["success"] = bool(message.get("success"))
                    result["error"] = (message.get("output") or {}).get("error")
                    break
                elif message.get("msg") == "close_stream":
                    break
    return result


def load_app_module():
    """app.py imported as a module (it sits beside tests/, not inside a package)."""
    spec = importlib.util.spec_from_file_location("tinygpt_app", APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
