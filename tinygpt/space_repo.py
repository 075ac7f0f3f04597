"""Making a Gradio Space for a pushed model: `tinygpt space` (see tinygpt.space for the command).

The Space gets tinygpt's app.py unchanged, the `tinygpt/` package beside it (the demo's logic and the training
engine behind the Train tab), the bundled tiny Shakespeare, the browser runtime for Generate in the visitor's
browser, a pinned requirements.txt and a card whose YAML configures the Space; the Space variable MODEL_ID names
the model repo that app.py loads. The Hub client's plumbing (token, errors, repo id checks) is tinygpt.hub's.

    create_space("me/tiny-shakespeare-demo", "me/tiny-shakespeare")
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .browser_files import RUNTIME_DIR, space_files
from .card import CARD_NAME
from .hub import InvalidRepoIdError, check_repo_id, hub_api, hub_errors
from .loading import (  # NotATinyGPTModelError: `tinygpt space --model` names a repo of another model type
    ModelLoadError, NotATinyGPTModelError, check_tinygpt_config,
)

APP_FILE = "app.py"
MODEL_ID_VARIABLE = "MODEL_ID"
# The package folder uploaded beside app.py, so the Space's Train tab has the training engine (app.py imports
# `tinygpt` from the folder it sits in; a Space pip-installs only requirements.txt).
PACKAGE_DIR = Path(__file__).resolve().parent
# What app.py and the engine need on a Space, first in requirements.txt (pinned to the versions installed here,
# which the tests ran), followed by anything else they import.
SPACE_REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "accelerate",
                      "gradio", "matplotlib", "tqdm",
                      # the Space's own ONNX export for its visitors' browsers (tinygpt.browser_generate), when the
                      # model repo has none: torch.onnx's exporter runs on onnxscript, which no file imports by name
                      "onnxscript")
# Extras a Space needs: gradio's OAuth ("Sign in with Hugging Face", so a visitor pushes their trained model with
# their own token). The Space's README asks the Hub for it (`hf_oauth`, with the write-repos scope).
SPACE_EXTRAS = {"gradio": ["oauth"]}
SPACE_OAUTH_SCOPES = ["write-repos"]
# The Python the Hub builds the Space with (it takes 3.10 unless the README names one; transformers >= 5.24 needs
# 3.11): the oldest that tinygpt supports, the one its tests run on.
SPACE_PYTHON = "3.11"
# PyTorch's index of CPU-only wheels, the first line of requirements.txt: on Linux, PyPI's torch is the CUDA build
# (gigabytes of libraries a Space on the free CPU hardware never uses). pip prefers its `2.13.0+cpu` to PyPI's
# `2.13.0` for `torch==2.13.0`. On GPU hardware, delete that line.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The Train tab's default text, uploaded at the same path beside app.py (where app.py looks for it).
BUNDLED_TEXT = "data/tinyshakespeare.txt"


@dataclass
class SpaceResult:
    space_id: str
    url: str
    model_id: str
    files: list[str]
    warnings: list[str] = field(default_factory=list)


SPACE_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A Gradio demo of the character-level GPT [{{ model_id }}]({{ model_url }}), made with
tinygpt's `tinygpt space`. `app.py` is tinygpt's demo app, unchanged: it loads the model
named by the Space variable `{{ variable }}` (now `{{ model_id }}`) with
`AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`, so pointing the Space at another tinygpt
model is a matter of changing that variable in the Space's settings. The `tinygpt/` folder beside it is the
tinygpt package: the demo's logic and the training engine that the app's Train tab runs, by default on
`data/tinyshakespeare.txt`. A visitor who signs in with the Hub (`hf_oauth`) can push the model they trained.

The Generate tab can write in the visitor's own browser: the browser loads `node_modules/onnxruntime-web/`
(onnxruntime-web's WebAssembly build, from the npm registry, uploaded with this Space) and the model's ONNX export
from this Space, never from a CDN. The export is the model repo's `onnx/model.onnx` when it was made from the same
weights (`tinygpt export onnx`, then `tinygpt push`), else the Space makes one on its first visit. Where a browser
cannot, the server writes, and the page says which.

The same app runs locally, on Python {{ python }} or newer:

```bash
pip install -r requirements.txt
python app.py --model {{ model_id }}
```

and its API endpoint `/generate` takes `(prompt, max_new_tokens, temperature, top_k, top_p, seed)`.
`requirements.txt` pins the versions tinygpt was tested with and takes PyTorch's CPU-only build (its first
line, `--extra-index-url {{ torch_index }}`): the free CPU hardware has no GPU.
On GPU hardware, delete that line.

## Hardware

Which hardware runs this Space is your choice, made on the Hub in the Space's **Settings** (tinygpt does not
pick or pay for any). The model is tiny, so the free CPU basic hardware is enough.
"""


def create_space(
    space_id: str,
    model_id: str,
    private: bool = False,
    *,
    app_file: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> SpaceResult:
    """Create (or update) the Gradio Space `space_id` that runs tinygpt's app.py on the model repo `model_id`.

    The Space gets app.py unchanged, the `tinygpt/` package (its .py files: the demo's logic and the training
    engine behind the Train tab), `data/tinyshakespeare.txt` (the Train tab's bundled text, where the checkout has
    it), a requirements.txt (what app.py and the package import, pinned to the installed versions; PyTorch's CPU
    wheel index; `gradio[oauth]`), a README.md whose YAML says `sdk: gradio`, `python_version`, `app_file: app.py`,
    a title, `models: [model_id]` and `hf_oauth: true`
    (the Train tab's "Sign in" for pushing), and the Space variable MODEL_ID=model_id, which app.py reads. A model
    id that the Hub does not know is refused (`ModelLoadError`: the Space could not start; push the model first),
    as is a repo that is not a tinygpt model (`NotATinyGPTModelError`), both before the Space is made. `app_file`
    defaults to the app.py of the tinygpt checkout.
    """
    check_repo_id(space_id, "Space id")
    try:
        check_repo_id(model_id, "model id")
    except InvalidRepoIdError as err:
        if Path(model_id).exists():
            raise InvalidRepoIdError(f"--model {model_id} is a local folder; push it first with "
                                     f"`tinygpt push {model_id} USER/NAME` and give that repo id") from None
        raise err
    app = find_app_file(app_file)
    app_source = app.read_text(encoding="utf-8")
    package_files = engine_files()
    requirements = space_requirements(app_source, *((PACKAGE_DIR / f).read_text(encoding="utf-8")
                                                     for f in package_files))
    api = hub_api(token, endpoint)
    notes = []
    if MODEL_ID_VARIABLE not in app_source:
        notes.append(f"{app} does not mention {MODEL_ID_VARIABLE}: the Space may not load {model_id}")
    browser_files = space_files(PACKAGE_DIR.parent)
    if not any(name.startswith(RUNTIME_DIR.as_posix()) for name in browser_files):
        notes.append(f"{PACKAGE_DIR.parent / RUNTIME_DIR} is missing (run `npm ci` in the tinygpt checkout): the "
                     "Space's visitors get their text from the server only, not from their own browser")
    bundled_text = PACKAGE_DIR.parent / BUNDLED_TEXT
    if not bundled_text.is_file():
        notes.append(f"{bundled_text} is missing (tinygpt is not installed from a checkout): the Space's Train tab "
                     "offers pasted and uploaded texts only")

    with hub_errors(f"looking up the model {model_id}", api.endpoint):
        if not api.repo_exists(model_id):  # the Space would build, then fail to start: refused before it is made
            raise ModelLoadError(f"--model {model_id}: no such model repo on {api.endpoint} (or your token cannot "
                                 f"see it), so the Space could not start; push the model first: "
                                 f"tinygpt push DIR {model_id}")
        check_tinygpt_repo(api, model_id)
    with hub_errors(f"creating the Space {space_id}", api.endpoint):
        space_url = api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        space_id = space_url.repo_id

    card = space_card(space_id, model_id, api.endpoint)
    with tempfile.TemporaryDirectory(prefix="tinygpt-space-") as staging:
        staging = Path(staging)
        shutil.copyfile(app, staging / APP_FILE)  # byte for byte
        for name in package_files:
            (staging / "tinygpt" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PACKAGE_DIR / name, staging / "tinygpt" / name)
        if bundled_text.is_file():
            (staging / BUNDLED_TEXT).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundled_text, staging / BUNDLED_TEXT)
        for name in browser_files:  # Generate in the visitor's browser: its scripts and onnxruntime-web (npm ci)
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PACKAGE_DIR.parent / name, staging / name)
        (staging / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        card.save(staging / CARD_NAME)
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        with hub_errors(f"uploading the app to the Space {space_id}", api.endpoint):
            api.upload_folder(repo_id=space_id, repo_type="space", folder_path=staging,
                              commit_message=f"tinygpt demo of {model_id}")
            api.add_space_variable(space_id, MODEL_ID_VARIABLE, model_id,
                                   description="the model repo that app.py loads")
    return SpaceResult(space_id=space_id, url=str(space_url).rstrip("/"), model_id=model_id, files=files,
                       warnings=notes)


def check_tinygpt_repo(api, model_id: str) -> None:
    """Refuse a model repo whose config.json is missing or names another model_type: app.py cannot run it."""
    from huggingface_hub.errors import EntryNotFoundError

    try:
        config_file = api.hf_hub_download(model_id, "config.json")
    except EntryNotFoundError:
        raise NotATinyGPTModelError(f"--model {model_id} has no config.json, so it is not a model pushed with "
                                    "`tinygpt push`; the Space could not load it") from None
    try:
        config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    except ValueError:
        config = None
    check_tinygpt_config(config, f"--model {model_id}", "the Space's app.py runs tinygpt models only (push one "
                         "with `tinygpt push`)")


def engine_files(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The package's Python files (relative POSIX paths), uploaded as `tinygpt/` beside app.py."""
    return sorted(p.relative_to(package_dir).as_posix() for p in package_dir.rglob("*.py")
                  if "__pycache__" not in p.relative_to(package_dir).parts)


def space_card(space_id: str, model_id: str, endpoint: str):
    """The Space's README.md: Spaces configuration in the YAML header (SpaceCardData), a short description."""
    from huggingface_hub import SpaceCard, SpaceCardData

    title = space_id.split("/")[-1]
    card_data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=_installed_version("gradio"),
        app_file=APP_FILE,
        models=[model_id],
        license="mit",
        tags=["tinygpt", "character-level", "text-generation"],
        emoji="📜",
        colorFrom="indigo",
        colorTo="gray",
        pinned=False,
        short_description=f"Character-level GPT demo: {model_id}"[:60],
        python_version=SPACE_PYTHON,
        hf_oauth=True,  # the Train tab's "Sign in with Hugging Face", to push a trained model with your own token
        hf_oauth_scopes=SPACE_OAUTH_SCOPES,
    )
    return SpaceCard.from_template(card_data, template_str=SPACE_CARD_TEMPLATE, title=title, model_id=model_id,
                                   model_url=f"{endpoint.rstrip('/')}/{model_id}", variable=MODEL_ID_VARIABLE,
                                   python=SPACE_PYTHON, torch_index=TORCH_CPU_INDEX)


def find_app_file(app_file: str | os.PathLike | None = None) -> Path:
    """The app.py to upload: the given file, else the one at the root of the tinygpt checkout."""
    path = Path(app_file) if app_file else Path(__file__).resolve().parent.parent / APP_FILE
    if not path.is_file():
        hint = "check the path" if app_file else "install tinygpt from a checkout (pip install -e .) or pass --app PATH"
        raise FileNotFoundError(f"{path}: no such app file; `tinygpt space` uploads tinygpt's app.py ({hint})")
    return path


def space_requirements(*sources: str) -> list[str]:
    """requirements.txt lines for a Space running these Python sources (app.py and the tinygpt package).

    A `--extra-index-url` line for PyTorch's CPU-only wheels first (`TORCH_CPU_INDEX`), then `SPACE_REQUIREMENTS`, then every
    other installed distribution the sources import (anywhere in a file: lazy imports count). Each is pinned to
    the version installed here, the one the tests ran (a local label such as torch's `+cpu` dropped: the index
    decides the build), else given tinygpt's own range, else unpinned. tinygpt is not listed: the package folder is
    uploaded beside app.py.
    """
    ranges = _tinygpt_requirements()
    names = list(SPACE_REQUIREMENTS)
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    imported = set().union(*(_all_imports(ast.parse(source)) for source in sources)) if sources else set()
    for module in sorted(imported - set(sys.stdlib_module_names) - {"tinygpt"}):
        for dist in distributions.get(module, [])[:1]:
            dist = _canonical(dist)
            if dist not in names and dist != "tinygpt":
                names.append(dist)
    from packaging.requirements import Requirement

    lines = [f"--extra-index-url {TORCH_CPU_INDEX}"]
    for name in names:
        installed = _installed_version(name)
        requirement = Requirement(f"{name}=={installed.split('+')[0]}" if installed else ranges.get(name, name))
        requirement.extras = set(SPACE_EXTRAS.get(name, ()))
        lines.append(str(requirement))
    return lines


def _all_imports(tree: ast.AST) -> set[str]:
    """Top-level package names of every absolute import in the file."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _tinygpt_requirements() -> dict[str, str]:
    """{distribution name: requirement} of tinygpt's own dependencies (pyproject.toml's `dependencies`): from
    the installed metadata, else from the checkout's pyproject.toml; extras (dev) are not needed on a Space."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        lines = requires("tinygpt") or []
    except PackageNotFoundError:
        lines = _pyproject_dependencies()
    from packaging.requirements import Requirement

    found = {}
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None:
            found[_canonical(requirement.name)] = f"{requirement.name}{requirement.specifier}"
    return found


def _pyproject_dependencies() -> list[str]:
    import tomllib

    try:
        with open(PACKAGE_DIR.parent / "pyproject.toml", "rb") as f:
            return tomllib.load(f)["project"]["dependencies"]
    except (OSError, ValueError, KeyError):
        return []


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
