"""A Space made by `tinygpt space` builds the way the Hub builds it: the Python its README names, a clean
environment, `pip install -r requirements.txt`, then `python app.py`, serving the model from the Hub.

Slow (a minute or more: pip installs torch, transformers and gradio into a new environment). pip uses the
machine's configured indexes; the requirements' extra index for PyTorch's CPU wheels may be unreachable (as in CI,
which has a local CPU wheel instead): pip then skips it without retrying.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app_helpers import AppServer, app_env, fn_index, make_model_dir, stream_generate

TOKEN = "hf_local_test_token"
PROMPT = "ROMEO:\n"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # pip installs torch, transformers and gradio into a new environment
def test_a_generated_space_installs_in_a_clean_environment_and_serves(hub_server, tmp_path):
    import torch
    from huggingface_hub import SpaceCard, snapshot_download
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tinygpt.model_repo import push_model
    from tinygpt.space_repo import create_space

    model_dir = make_model_dir(tmp_path / "model")
    push_model(model_dir, "tester/tiny", token=TOKEN, endpoint=hub_server.url)
    create_space("tester/demo", "tester/tiny", token=TOKEN, endpoint=hub_server.url)
    space = Path(snapshot_download("tester/demo", repo_type="space", local_dir=tmp_path / "space",
                                   token=TOKEN, endpoint=hub_server.url))

    python_version = SpaceCard.load(space / "README.md").data.python_version  # what the Hub builds it with
    python = shutil.which(f"python{python_version}")
    if python is None:
        pytest.skip(f"python{python_version}, which the Space's README names, is not on PATH")
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, stdin=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    # No .pyc for every installed file (a quarter of the CPU time; the app compiles what it imports); no retries
    env.update(PIP_NO_COMPILE="1", PIP_RETRIES="0", PIP_DEFAULT_TIMEOUT="20", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INPUT="1")
    space_python = str(venv / "bin" / "python")
    install = subprocess.run([space_python, "-m", "pip", "install", "-q", "-r", str(space / "requirements.txt")],
                             cwd=space, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-4000:]
    built = subprocess.run([space_python, "-c", "import sys, torch; print(sys.version_info[:2], torch.__version__)"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert built.startswith(f"({python_version.replace('.', ', ')})"), built
    if sys.platform == "linux":
        assert "+cpu" in built, built  # PyTorch's CPU build, not PyPI's CUDA one

    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    with torch.no_grad():
        expected = tokenizer.decode(model.generate(**tokenizer(PROMPT, return_tensors="pt"), max_new_tokens=40,
                                                   do_sample=False)[0])

    app_environment = app_env(MODEL_ID="tester/tiny", HF_ENDPOINT=hub_server.url, HF_HOME=str(tmp_path / "hf_home"))
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):
        app_environment.pop(name, None)
    with AppServer([], tmp_path / "space-app.log", env=app_environment, timeout=240, python=space_python,
                   app=space / "app.py") as server:  # as the Hub starts it: no arguments, MODEL_ID set
        answer = stream_generate(server.url, [PROMPT, 40, 0.0, 0, 1.0, 0], fn_index(server.config(), "generate"))
    assert answer["error"] is None, server.log()
    assert answer["final"] == expected
