"""Sharing on the Hub: `tinygpt push`, `tinygpt space`, `train.py --push-to-hub`, against the local Hub server.

Never the real Hub: the autouse `hf_env` fixture points the client at a closed local port unless a test asks for
the local Hub (`hub`), gives every test a fresh HF_HOME and no token. huggingface_hub reads HF_ENDPOINT at import
time, so in this process `point_at` patches its constants as HF_ENDPOINT would have set them; subprocesses get
the real environment variables.
"""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, SpaceCard, constants, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import make_model
from hub_server import HubServer
from no_tinygpt import run_without_tinygpt
from tinygpt import cli
from tinygpt.browser_files import PAGE_FILES, find_runtime, space_files
from tinygpt.card import write_model_card
from tinygpt.loading import ModelLoadError, load_pretrained
from tinygpt.model_repo import push_model, select_files
from tinygpt.space_repo import space_requirements

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinygpt"
TOKEN = "hf_local_test_token"
PROMPT = "All:\n"
SAMPLE = "First Citizen:\nSpeak, speak."
COMMAND = "python train.py --data tiny.txt --out-dir out --max-iters 200"
# What `tinygpt push DIR tester/tiny` prints after "Load it with:", to the character.
SNIPPET = """\
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("tester/tiny", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("tester/tiny", trust_remote_code=True)"""


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once the socket is closed


@pytest.fixture(autouse=True)
def hf_env(tmp_path, monkeypatch):
    """Fresh HF_HOME, no token, no offline mode, and a Hub that refuses connections unless a test starts one."""
    home = tmp_path / "hf_home"
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE",
                "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    for name, value in {
        "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"), "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"), "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }.items():
        monkeypatch.setattr(constants, name, value)
    point_at(_closed_port_url(), monkeypatch)
    return home


def point_at(url: str, monkeypatch) -> None:
    """What HF_ENDPOINT=url does, for this process (constants already imported) and its subprocesses."""
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def hub(hub_server, monkeypatch):
    """The local Hub as this test's Hub, with a token in HF_TOKEN."""
    point_at(hub_server.url, monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return hub_server


@pytest.fixture
def api(hub):
    return HfApi(endpoint=hub.url, token=TOKEN)


@pytest.fixture
def trained_dir(model_dir):
    """A folder as train.py leaves it: model, tokenizer, trainer_state.json, loss plot, card, resume state."""
    state = {
        "global_step": 200,
        "best_val_loss": 1.2345,
        "log_history": [{"step": 200, "train_loss": 1.1, "val_loss": 1.2345, "elapsed_s": 12.0, "sample": SAMPLE}],
        "training_args": {"max_iters": 200, "batch_size": 8, "learning_rate": 1e-3},
        "data": {"name": "tiny.txt", "characters": 1000},
        "command": COMMAND,
    }
    (model_dir / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    (model_dir / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a plot")
    write_model_card(model_dir, license="apache-2.0")  # the sample and command come from trainer_state.json
    torch.save({"optimizer": {"step": 200}}, model_dir / "training_state.pt")
    torch.save({"exp_avg": torch.zeros(3)}, model_dir / "optimizer.pt")
    (model_dir / ".tmp-checkpoint").mkdir()  # an interrupted checkpoint: never pushed
    (model_dir / ".tmp-checkpoint" / "config.json").write_text("{}")
    return model_dir


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(capsys, *args):
    """`tinygpt ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def greedy(model, tokenizer, prompt=PROMPT, n=40) -> str:
    ids = tokenizer(prompt, return_tensors="pt")
    return tokenizer.decode(model.generate(**ids, max_new_tokens=n, do_sample=False)[0])


def second_model(folder: Path, tokenizer, seed=1):
    """Different weights for the same tokenizer, saved into `folder` (a retrained model)."""
    other = make_model(len(tokenizer), seed=seed)
    other.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return other


# ----------------------------------------------------------------------------------------------- push + load


@pytest.mark.slow
def test_push_then_load_without_tinygpt(hub, trained_dir, model, tokenizer, tmp_path, capsys, app_file):
    """Where tinygpt cannot be imported, from an empty HF_HOME, with HF_ENDPOINT set: the snippet `tinygpt push`
    prints, a branch pushed with --revision, and the Space's own app.py (its MODEL_ID from the Space's variables)
    all load the pushed models and give the same greedy text; the Space's app.py imports tinygpt from the
    package folder uploaded beside it, whose every module imports there. One interpreter for all three: each
    start costs seconds."""
    before = snapshot(trained_dir)
    code, out, err = run_cli(capsys, "push", trained_dir, "tester/tiny")
    assert code == 0, err
    assert err == ""
    assert f"{hub.url}/tester/tiny" in out.splitlines()
    assert out.endswith("Load it with:\n\n" + SNIPPET + "\n")
    assert snapshot(trained_dir) == before  # the folder is never written to

    dev_dir = tmp_path / "dev"
    dev_model = second_model(dev_dir, tokenizer)
    code, out, err = run_cli(capsys, "push", dev_dir, "tester/tiny", "--revision", "dev")
    assert code == 0, err
    code, out, err = run_cli(capsys, "space", "tester/demo", "--model", "tester/tiny")
    assert code == 0, err

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    result = run_without_tinygpt(
        SNIPPET + f"""
import importlib.util, json, os
from huggingface_hub import HfApi, snapshot_download

def greedy(model, tokenizer):
    out = model.generate(**tokenizer({PROMPT!r}, return_tensors="pt"), max_new_tokens=40, do_sample=False)
    return tokenizer.decode(out[0])

texts = {{"main": greedy(model, tokenizer), "class": type(model).__module__}}
dev_model = AutoModelForCausalLM.from_pretrained("tester/tiny", revision="dev", trust_remote_code=True)
dev_tokenizer = AutoTokenizer.from_pretrained("tester/tiny", revision="dev", trust_remote_code=True)
texts["dev"] = greedy(dev_model, dev_tokenizer)

space = snapshot_download("tester/demo", repo_type="space", local_dir="space")
os.environ["MODEL_ID"] = HfApi().get_space_variables("tester/demo")["MODEL_ID"].value
sys.path.insert(0, space)  # what `python app.py` in the Space's folder does
spec = importlib.util.spec_from_file_location("app", os.path.join(space, "app.py"))
app = sys.modules["app"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
loaded = app.load_model(os.environ["MODEL_ID"])
texts["space"] = greedy(loaded.model, loaded.tokenizer)
texts["bundled_text"] = str(app.BUNDLED_TEXT) if app.BUNDLED_TEXT.is_file() else None  # the Train tab's default
for name in sorted(os.listdir(os.path.join(space, "tinygpt"))):  # the engine works from the uploaded folder
    if name.endswith(".py") and name != "__init__.py":
        importlib.import_module("tinygpt." + name[:-3])
texts["tinygpt_from"] = sorted({{os.path.dirname(m.__file__) for k, m in sys.modules.items()
                                 if k == "tinygpt" or k.startswith("tinygpt.")}})
print(json.dumps(texts))
""",
        cwd=workdir,
        env={"HF_HOME": str(tmp_path / "fresh_home"), "HF_ENDPOINT": hub.url, "HF_TOKEN": ""},  # public: no token
        allow_from=workdir / "space",  # the Space's own copy of the package, never the installed one
    )
    expected = greedy(model, tokenizer)
    assert result["main"] == expected
    assert result["space"] == expected
    assert result["dev"] == greedy(dev_model, tokenizer) != expected
    assert "modeling_tinygpt" in result["class"]  # the repo's own code, as remote code
    package = (workdir / "space" / "tinygpt").resolve()  # every tinygpt module came from the Space's copy
    assert str(package) in result["tinygpt_from"]  # (train_tab/ is a folder of it)
    assert all(Path(folder).is_relative_to(package) for folder in result["tinygpt_from"]), result["tinygpt_from"]
    assert result["bundled_text"] == str((workdir / "space" / "data" / "tinyshakespeare.txt").resolve())


def test_card_on_the_hub(hub, api, trained_dir):
    push_model(trained_dir, "tester/tiny")
    card = ModelCard.load(hf_hub_download("tester/tiny", "README.md", endpoint=hub.url))
    data = card.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "text-generation"
    assert {"tinygpt", "character-level", "custom_code"} <= set(data.tags)
    assert data.license == "apache-2.0"  # kept from the folder's card
    assert data.training_data == "tiny.txt"
    assert data.val_loss == pytest.approx(1.2345)
    assert SNIPPET in card.text  # the real repo id, not the local path train.py knew
    assert "| layers (`n_layer`) | 2 |" in card.text
    assert "Best validation loss: **1.2345**" in card.text and "| max_iters | 200 |" in card.text
    assert "![training and validation loss](loss.png)" in card.text
    assert SAMPLE in card.text and COMMAND in card.text  # from trainer_state.json
    info = api.model_info("tester/tiny")
    assert (info.library_name, info.pipeline_tag) == ("transformers", "text-generation")


@pytest.mark.parametrize("include", [False, True], ids=["default", "include-training-state"])
def test_training_state_stays_local_unless_asked(hub, api, trained_dir, capsys, include):
    flags = ["--include-training-state"] if include else []
    code, out, err = run_cli(capsys, "push", trained_dir, "tester/tiny", *flags)
    assert code == 0, err
    files = set(api.list_repo_files("tester/tiny"))
    # what README.md's "Share on the Hub" lists: weights, config, generation settings, the three code files,
    # the tokenizer, the training record and plot, the card
    shareable = {".gitattributes", "README.md", "config.json", "model.safetensors", "configuration_tinygpt.py",
                 "modeling_tinygpt.py", "tokenization_tinygpt.py", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "trainer_state.json", "loss.png"}
    resume = {"training_state.pt", "optimizer.pt"}
    assert files == (shareable | resume if include else shareable)
    assert ("Left out" in out) is not include
    assert hub.read_file("tester/tiny", "model.safetensors") == (trained_dir / "model.safetensors").read_bytes()
    for name in ("trainer_state.json", "generation_config.json"):
        assert hub.read_file("tester/tiny", name) == (trained_dir / name).read_bytes()


def test_select_files(trained_dir):
    (trained_dir / "__pycache__").mkdir()
    (trained_dir / "__pycache__" / "x.pyc").write_bytes(b"")
    (trained_dir / "samples").mkdir()
    (trained_dir / "samples" / "rng_state.pth").write_bytes(b"")
    files, left_out = select_files(trained_dir)
    assert "README.md" not in files  # replaced by the refreshed card
    assert not any(f.startswith((".", "__pycache__")) for f in files + left_out)
    assert left_out == ["optimizer.pt", "samples/rng_state.pth", "training_state.pt"]
    files, left_out = select_files(trained_dir, include_training_state=True)
    assert left_out == [] and "samples/rng_state.pth" in files


def test_second_push_is_a_new_commit(hub, api, model_dir, tokenizer, capsys):
    first = push_model(model_dir, "tester/tiny")
    old_weights = (model_dir / "model.safetensors").read_bytes()
    second_model(model_dir, tokenizer)  # retrained in place

    code, out, err = run_cli(capsys, "push", model_dir, "tester/tiny", "--commit-message", "retrained")
    assert code == 0, err
    commits = api.list_repo_commits("tester/tiny")
    assert [c.title for c in commits[:2]] == ["retrained", "Upload tinygpt model"]
    assert len(commits) == 3  # the repo's initial commit + two pushes
    assert commits[1].commit_id == first.commit
    assert hub.read_file("tester/tiny", "model.safetensors") == (model_dir / "model.safetensors").read_bytes()
    assert hub.read_file("tester/tiny", "model.safetensors", revision=first.commit) == old_weights

    code, out, err = run_cli(capsys, "push", model_dir, "tester/tiny")  # nothing changed: no empty commit
    assert code == 0, err
    assert out.startswith("Nothing to push") and err == ""
    assert len(api.list_repo_commits("tester/tiny")) == 3


def test_revision_pushes_to_a_new_branch(hub, api, model_dir, model, tokenizer, tmp_path, capsys):
    push_model(model_dir, "tester/tiny")
    main_weights = hub.read_file("tester/tiny", "model.safetensors")
    dev_dir = tmp_path / "dev"
    dev_model = second_model(dev_dir, tokenizer)

    code, out, err = run_cli(capsys, "push", dev_dir, "tester/tiny", "--revision", "dev")
    assert code == 0, err
    assert f"{hub.url}/tester/tiny/tree/dev" in out.splitlines()
    assert 'from_pretrained("tester/tiny", revision="dev", trust_remote_code=True)' in out
    assert "dev" in {b.name for b in api.list_repo_refs("tester/tiny").branches}
    assert hub.read_file("tester/tiny", "model.safetensors") == main_weights  # main untouched
    card = ModelCard.load(hf_hub_download("tester/tiny", "README.md", revision="dev", endpoint=hub.url))
    assert 'revision="dev"' in card.text

    code, out, err = run_cli(capsys, "push", model_dir, "tester/tiny", "--revision", "dev")  # branch exists now
    assert code == 0, err

    # `tinygpt generate REPO_ID --revision` (load_pretrained) reads the branch from the Hub
    loaded, _ = load_pretrained("tester/tiny", revision="dev")
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)  # dev now holds model_dir's model again
    code, out, err = run_cli(capsys, "generate", "tester/tiny", "--prompt", PROMPT, "--max-new-tokens", 40,
                             "--temperature", 0)
    assert code == 0, err
    assert out == greedy(model, tokenizer) + "\n"


def test_private_repo(hub, api, model_dir, capsys):
    hub.require_token = True  # the server then hides private repos from anonymous readers, as the Hub does
    code, out, err = run_cli(capsys, "push", model_dir, "tester/secret", "--private")
    assert code == 0, err
    assert api.model_info("tester/secret").private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=False).model_info("tester/secret")

    push_model(model_dir, "tester/open")
    code, out, err = run_cli(capsys, "push", model_dir, "tester/open", "--private")
    assert code == 0, err
    assert err.startswith("warning: tester/open already exists and is public")
    assert api.model_info("tester/open").private is False


def test_repo_id_without_namespace_goes_to_the_user(hub, api, model_dir, capsys):
    code, out, err = run_cli(capsys, "push", model_dir, "tiny")
    assert code == 0, err
    assert f"{hub.url}/{hub.username}/tiny" in out.splitlines()
    assert f'from_pretrained("{hub.username}/tiny", trust_remote_code=True)' in out
    assert "model.safetensors" in api.list_repo_files(f"{hub.username}/tiny")


# ----------------------------------------------------------------------------------------------------- space


@pytest.fixture
def app_file():
    """The demo app that `tinygpt space` uploads by default (the one at the repository root)."""
    return ROOT / "app.py"


def test_space_repo(hub, api, model_dir, app_file, capsys):
    push_model(model_dir, "tester/tiny")
    code, out, err = run_cli(capsys, "space", "tester/demo", "--model", "tester/tiny")
    assert code == 0, err
    runtime, _ = find_runtime(ROOT)
    if runtime is None:  # no `npm ci` in this checkout: the Space works, its visitors' browsers do not write
        assert err.startswith(f"warning: {ROOT / 'node_modules' / 'onnxruntime-web'} is missing (run `npm ci`"), err
    else:
        assert err == ""
        assert "and node_modules/onnxruntime-web/ for visitors' browsers" in out
    assert f"{hub.url}/spaces/tester/demo" in out.splitlines()

    files = set(api.list_repo_files("tester/demo", repo_type="space"))
    # the package beside app.py, for the Train tab: every Python file, no caches
    package = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert {"__init__.py", "modeling_tinygpt.py", "tokenization_tinygpt.py", "common.py"} <= package
    top = {".gitattributes", "README.md", "app.py", "requirements.txt", "data/tinyshakespeare.txt"}
    # Generate in the visitor's browser: the page's scripts, and onnxruntime-web where `npm ci` installed it
    browser = set(space_files(ROOT))
    assert {f"tinygpt/web/{name}" for name in PAGE_FILES} <= browser
    assert files == top | {f"tinygpt/{f}" for f in package} | browser
    for name in browser:
        assert hub.read_file("tester/demo", name, repo_type="space") == (ROOT / name).read_bytes()
    assert hub.read_file("tester/demo", "app.py", repo_type="space") == app_file.read_bytes()  # unchanged
    for name in package:
        assert hub.read_file("tester/demo", f"tinygpt/{name}", repo_type="space") == (PACKAGE / name).read_bytes()
    # the Train tab's default text, where app.py looks for it (data/ beside app.py)
    bundled = ROOT / "data" / "tinyshakespeare.txt"
    assert hub.read_file("tester/demo", "data/tinyshakespeare.txt", repo_type="space") == bundled.read_bytes()
    assert f"and tinygpt/ ({len(package)} Python files: the training engine) and the Train tab's bundled text" in out

    lines = hub.read_file("tester/demo", "requirements.txt", repo_type="space").decode().splitlines()
    assert lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"  # torch's CPU build: no GPU there
    requirements = [Requirement(line) for line in lines[1:]]
    by_name = {canonicalize_name(r.name): r for r in requirements}
    engine_needs = ("torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "accelerate", "gradio",
                    "matplotlib", "tqdm")
    assert set(engine_needs) <= set(by_name) and "tinygpt" not in by_name  # tinygpt is the uploaded folder
    assert by_name["gradio"].extras == {"oauth"}  # gr.LoginButton's dependencies, for the push with the Hub's sign-in
    import tomllib
    from importlib.metadata import version

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pyproject = {canonicalize_name(Requirement(line).name): Requirement(line).specifier for line in dependencies}
    for name in engine_needs:  # the versions these tests run on (torch's "+cpu" label left to the index)
        assert str(by_name[name].specifier) == f"=={version(name).split('+')[0]}", (name, by_name[name])
        assert pyproject[name].contains(version(name).split("+")[0]), (name, by_name[name])

    card = SpaceCard.load(hf_hub_download("tester/demo", "README.md", repo_type="space", endpoint=hub.url))
    assert card.data.sdk == "gradio"
    assert card.data.app_file == "app.py"
    assert card.data.python_version == "3.11"  # the Hub's default is 3.10, where transformers 5.24+ does not install
    assert card.data.models == ["tester/tiny"]
    assert card.data.title == "demo"
    assert card.data.hf_oauth is True and card.data.hf_oauth_scopes == ["write-repos"]  # the sign-in push works
    assert "hardware" in card.text.lower()
    assert api.space_info("tester/demo").sdk == "gradio"
    assert api.get_space_variables("tester/demo")["MODEL_ID"].value == "tester/tiny"

    # Again, for another model: the Space is updated, not an error.
    push_model(model_dir, "tester/tiny2")
    code, out, err = run_cli(capsys, "space", "tester/demo", "--model", "tester/tiny2")
    assert code == 0, err
    assert api.get_space_variables("tester/demo")["MODEL_ID"].value == "tester/tiny2"


def test_space_for_a_missing_model_is_refused_before_the_space_is_made(hub, api, app_file, capsys):
    """It was a warning and exit 0, leaving a Space that could not start."""
    code, out, err = run_cli(capsys, "space", "tester/demo", "--model", "tester/not-pushed-yet")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err == (f"tinygpt space: error: --model tester/not-pushed-yet: no such model repo on {hub.url} (or your "
                   "token cannot see it), so the Space could not start; push the model first: tinygpt push DIR "
                   "tester/not-pushed-yet\n")
    assert not api.repo_exists("tester/demo", repo_type="space")


def test_space_requirements_list_what_the_sources_import_but_not_tinygpt():
    from importlib.metadata import version

    base = space_requirements("import gradio\nimport torch\n")
    assert base[1] == f"torch=={version('torch').split('+')[0]}" and not any(r.startswith("tinygpt") for r in base)
    # a lazy import counts; `import tinygpt` is the uploaded folder, not a requirement
    lines = space_requirements("import tinygpt\n", "def f():\n    import pandas\n")
    assert lines[: len(base)] == base and lines[len(base):] == [f"pandas=={version('pandas')}"]


@pytest.mark.parametrize("config, message", [
    ({"model_type": "gpt2", "n_layer": 2}, "--model tester/other is a 'gpt2' model, not a tinygpt model"),
    (None, "--model tester/other has no config.json"),
])
def test_space_refuses_a_model_that_is_not_tinygpt(hub, api, capsys, tmp_path, config, message):
    api.create_repo("tester/other")
    if config is not None:
        api.upload_file(path_or_fileobj=json.dumps(config).encode(), path_in_repo="config.json",
                        repo_id="tester/other")
    else:
        api.upload_file(path_or_fileobj=b"# a model card and nothing else\n", path_in_repo="README.md",
                        repo_id="tester/other")
    code, out, err = run_cli(capsys, "space", "tester/demo", "--model", "tester/other")
    assert code == 2 and out == ""
    assert message in one_line(err)
    assert not api.repo_exists("tester/demo", repo_type="space")  # refused before the Space is made


def test_a_bare_name_is_a_hub_repo_and_a_path_is_a_folder(hub, capsys):
    """tinygpt.common.is_local_path decides: `gpt2` is asked of the Hub; `./gpt2` and `a/b/c` never are."""
    for name in ("./gpt2", "a/b/c", "~/nope"):
        with pytest.raises(ModelLoadError, match="no such folder"):
            load_pretrained(name)
    assert hub.requests == []
    with pytest.raises(ModelLoadError, match=r"^gpt2: .*Hub"):  # (the local server has no namespace-less repos)
        load_pretrained("gpt2")
    assert hub.requests and hub.requests[0]["path"].startswith("/api/models/gpt2")  # it asked the Hub


# ------------------------------------------------------------------------------------------------- errors


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def command_line(command: str, folder: Path) -> list:
    if command == "push":
        return ["push", folder, "tester/tiny"]
    return ["space", "tester/demo", "--model", "tester/tiny", "--app", ROOT / "tests" / "hub_server.py"]


@pytest.mark.parametrize("command", ["push", "space"])
def test_hub_down_fails_fast_and_keeps_the_folder(hub, trained_dir, capsys, command):
    hub.fail_with = 503
    before = snapshot(trained_dir)
    started = time.monotonic()
    code, out, err = run_cli(capsys, *command_line(command, trained_dir))
    assert time.monotonic() - started < 5  # one request, no retry loop
    assert code == 2
    line = one_line(err)
    assert "503" in line and "try again later" in line
    if command == "push":
        assert f"the local folder {trained_dir} is unchanged" in line
    assert snapshot(trained_dir) == before
    assert len(hub.requests) == 1


def test_hub_unreachable(trained_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the endpoint stays hf_env's closed port
    before = snapshot(trained_dir)
    code, out, err = run_cli(capsys, "push", trained_dir, "tester/tiny")
    assert code == 2
    line = one_line(err)
    assert "could not reach the Hub at http://127.0.0.1:" in line and "is unchanged" in line
    assert snapshot(trained_dir) == before


@pytest.mark.parametrize("command", ["push", "space"])
def test_no_token(tmp_path, trained_dir, capsys, monkeypatch, command):
    """HF_TOKEN unset and an empty HF_HOME (hf_env): refused before any request, with what to do."""
    with HubServer(tmp_path / "hub", require_token=True) as server:
        point_at(server.url, monkeypatch)
        before = snapshot(trained_dir)
        code, out, err = run_cli(capsys, *command_line(command, trained_dir))
        assert code == 2
        line = one_line(err)
        assert "`hf auth login`" in line and "HF_TOKEN" in line
        assert server.requests == []
        assert snapshot(trained_dir) == before


@pytest.mark.parametrize("repo_id", ["tester/tiny/extra", "my model", "tester/-tiny", "tester/ti--ny", "x" * 97])
def test_invalid_repo_id(hub, model_dir, capsys, repo_id):
    for args in (["push", model_dir, repo_id], ["space", repo_id, "--model", "tester/tiny"],
                 ["space", "tester/demo", "--model", repo_id]):
        code, out, err = run_cli(capsys, *args)
        assert code == 2
        assert "is not a valid Hub" in one_line(err)
    assert hub.requests == []


def test_space_model_must_be_a_repo_id_not_a_folder(hub, model_dir, capsys):
    code, out, err = run_cli(capsys, "space", "tester/demo", "--model", model_dir)
    assert code == 2
    assert "push it first with `tinygpt push" in one_line(err)


def test_space_needs_an_app_file(hub, tmp_path, capsys):
    code, out, err = run_cli(capsys, "space", "tester/demo", "--model", "tester/tiny", "--app", tmp_path / "nope.py")
    assert code == 2
    assert "no such app file" in one_line(err)
    assert hub.requests == []


def _break(folder: Path, how: str) -> Path:
    if how == "missing":
        return folder / "nope"
    if how == "bert":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    elif how == "trainer_state.json":
        (folder / how).write_text("{not json")
    elif how == "plain-dir":
        (folder / "config.json").unlink()
    else:
        (folder / how).unlink()
    return folder


@pytest.mark.parametrize("how, message", [
    ("missing", "no such folder"),
    ("plain-dir", "no config.json"),
    ("bert", "not a tinygpt model"),
    ("model.safetensors", "no model.safetensors"),
    ("tokenizer.json", "missing tokenizer.json"),
    ("modeling_tinygpt.py", "missing modeling_tinygpt.py"),
    ("trainer_state.json", "trainer_state.json: not valid JSON"),
])
def test_not_a_tinygpt_folder(hub, model_dir, capsys, how, message):
    folder = _break(model_dir, how)
    before = snapshot(model_dir)
    code, out, err = run_cli(capsys, "push", folder, "tester/tiny")
    assert code == 2
    assert message in one_line(err)
    assert hub.requests == []
    assert snapshot(model_dir) == before


# -------------------------------------------------------------------------------------------------- train.py


@pytest.mark.slow
def test_train_push_to_hub(hub, api, tmp_path, small_text):
    data = tmp_path / "tiny.txt"
    data.write_text(small_text * 10, encoding="utf-8")
    out_dir = tmp_path / "out"
    trained = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--data", str(data), "--out-dir", str(out_dir),
         "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
         "--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1", "--device", "cpu", "--seed", "1",
         "--push-to-hub", "tester/trained", "--push-every-eval"],
        cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    assert f"pushed step 2 to {hub.url}/tester/trained" in trained.stdout
    assert "failed" not in trained.stderr

    titles = [c.title for c in api.list_repo_commits("tester/trained")]
    assert len(titles) == 1 + 2  # the repo's initial commit, then one per checkpoint, newest first
    assert titles[0].startswith("step 2") and titles[1].startswith("step 0")
    files = set(api.list_repo_files("tester/trained"))
    assert {"model.safetensors", "config.json", "modeling_tinygpt.py", "configuration_tinygpt.py",
            "tokenizer.json", "README.md", "trainer_state.json", "loss.png"} <= files
    assert "training_state.pt" not in files
    assert hub.read_file("tester/trained", "model.safetensors") == (out_dir / "model.safetensors").read_bytes()
    assert json.loads(hub.read_file("tester/trained", "trainer_state.json"))["global_step"] == 2

    card = ModelCard.load(hf_hub_download("tester/trained", "README.md", endpoint=hub.url))
    assert card.data.pipeline_tag == "text-generation" and card.data.library_name == "transformers"
    state = json.loads((out_dir / "trainer_state.json").read_text())
    assert card.data.val_loss == pytest.approx(round(state["best_val_loss"], 4))
    assert 'from_pretrained("tester/trained", trust_remote_code=True)' in card.text
    assert "## A sample" in card.text and "Reproduce it from the root of a tinygpt checkout" in card.text  # train.py's sample and command

    model, tokenizer = load_pretrained("tester/trained")
    local, _ = load_pretrained(out_dir)
    ids = torch.tensor([[0, 1, 2]])
    torch.testing.assert_close(model(ids).logits, local(ids).logits)
