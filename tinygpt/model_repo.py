"""Sharing a model folder as a model repo on the Hugging Face Hub: `tinygpt push`, and `train.py --push-to-hub`.

What goes up is the loadable part of the folder (weights, config, tokenizer and the code files that
`trust_remote_code` loads), its ONNX export when it was made from these weights (a fresh one with `onnx=True`),
and a freshly built model card; resume state stays local unless asked for. Nothing here touches the local
folder: the upload is staged in a temporary folder (the files to share plus the refreshed card), so a failed push
leaves the model folder exactly as it was. The Hub client's plumbing (which Hub, whose token, the Hub's errors as
one line) is tinygpt.hub's.

    push_folder("out", "me/tiny-shakespeare")            # what `train.py --push-to-hub` calls
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .card import CARD_NAME, build_model_card, check_license
from .hub import check_branch_name, check_repo_id, hub_api, hub_errors
from .loading import ModelLoadError, check_local_folder, check_model_dir
from .run_state import RunState

# Resume-only files (optimizer, scheduler, RNG state, pickles): a shared model does not need them, and pickles
# are code that runs on load. Pushed only with include_training_state=True / --include-training-state.
TRAINING_STATE_PATTERNS = (
    "*.pt", "*.pth", "*.bin", "*.pkl", "*.pickle", "*.ckpt",
    "training_state*", "optimizer*", "scheduler*", "rng_state*",
    "train.txt",  # the text a demo run was given (kept locally for the reproduce command; it may be private)
)
# Where a repo keeps its ONNX export (Optimum's and transformers.js's layout), see tinygpt.onnx_export.
ONNX_FOLDER = "onnx/"
# Never pushed: hidden files and folders (.git, .cache/huggingface, editor files) and Python caches.
SKIPPED_PATTERNS = (".*", "__pycache__", "*.pyc", "*.tmp", "*.lock")
# What a folder needs so that a repo made from it loads with transformers alone.
REQUIRED_FILES = ("config.json", "model.safetensors", "configuration_tinygpt.py", "modeling_tinygpt.py",
                  "tokenizer.json")


@dataclass
class PushResult:
    repo_id: str
    url: str  # the repo's page
    revision: str  # the branch that got the commit
    commit: str  # the commit now at the head of that branch
    changed: bool  # False when the repo already had exactly these files (no new commit)
    files: list[str]  # paths pushed (README.md is the refreshed card)
    left_out: list[str]  # training state, not pushed
    warnings: list[str] = field(default_factory=list)

    @property
    def tree_url(self) -> str:
        return self.url if self.revision == "main" else f"{self.url}/tree/{self.revision}"


def push_folder(
    model_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    include_training_state: bool = False,
    *,
    token: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Push a tinygpt folder to the Hub repo `repo_id` (created if needed) and return the repo's URL.

    See `push_model`, which this wraps for `train.py`; its warnings (e.g. --private on an existing public repo)
    are issued with `warnings.warn`.
    """
    result = push_model(model_dir, repo_id, private=private, revision=revision, commit_message=commit_message,
                        include_training_state=include_training_state, token=token, endpoint=endpoint)
    for message in result.warnings:
        warnings.warn(message, UserWarning, stacklevel=2)
    return result.url


def push_model(
    model_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    include_training_state: bool = False,
    *,
    onnx: bool = False,
    license: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> PushResult:
    """Upload the loadable part of a tinygpt folder, with a refreshed model card, as one commit.

    An ONNX export travels under `onnx/` (see `plan_onnx`): the folder's own `onnx/model.onnx` when it was
    exported from these weights, or, with `onnx=True`, a fresh one made in the staging folder. A repo whose
    `onnx/` no longer matches the weights being pushed loses it in the same commit.

    The repo is created if it does not exist (`private` applies then); an existing repo gets a new commit (none
    when nothing changed). `revision` is a branch, created from main if missing. Training state (see
    `TRAINING_STATE_PATTERNS`) stays local unless `include_training_state`. `repo_id` may leave out the
    namespace ("tiny" -> "<you>/tiny"). `license` (a Hub licence id) is what the pushed card declares instead of
    the run's choice (see `build_model_card`). `endpoint` and `token` default to HF_ENDPOINT and HF_TOKEN / the
    token of `hf auth login`.

    Raises ValueError (not a tinygpt folder, bad repo id or branch) or HubError (no token, Hub unreachable,
    refused); the local folder is never modified.
    """
    model_dir = Path(model_dir)
    if license is not None:
        check_license(license)
    check_shareable_folder(model_dir)
    check_repo_id(repo_id)
    check_branch_name(revision)
    files, left_out = select_files(model_dir, include_training_state)
    onnx_plan = plan_onnx(model_dir, files, onnx)  # before any request: a stale export or a missing extra
    files = onnx_plan.files
    branch = revision or "main"
    card_revision = None if branch == "main" else branch
    # Built before any request, so a folder the card cannot describe fails before a repo is created.
    card = build_model_card(model_dir, repo_id=repo_id, revision=card_revision, onnx=onnx_plan.pushed, license=license)
    message = commit_message or default_commit_message(model_dir)
    api = hub_api(token, endpoint)
    where = f"the local folder {model_dir} is unchanged"
    notes = []

    with hub_errors(f"creating the model repo {repo_id}", api.endpoint, where):
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        if private and not api.model_info(repo_url.repo_id).private:
            notes.append(f"{repo_url.repo_id} already exists and is public: --private only applies to a new repo "
                         "(change its visibility in the repo's settings on the Hub)")
        if branch != "main":
            api.create_branch(repo_url.repo_id, branch=branch, exist_ok=True)
        info = api.model_info(repo_url.repo_id, revision=branch, files_metadata=True)
        head = info.sha
    delete = stale_remote_onnx(info, model_dir) if not onnx_plan.pushed else None
    if delete:
        notes.append(f"removed onnx/ from {repo_url.repo_id}: it was exported from the weights this push replaces "
                     "(push with --onnx to add a fresh export)")
    if repo_url.repo_id != repo_id:  # "name" became "user/name": the card's snippet must say so
        repo_id = repo_url.repo_id
        card = build_model_card(model_dir, repo_id=repo_id, revision=card_revision, onnx=onnx_plan.pushed,
                                 license=license)

    with tempfile.TemporaryDirectory(prefix="tinygpt-push-") as staging:
        staging = Path(staging)
        for name in files:
            _stage(model_dir / name, staging / name)
        if onnx_plan.export:  # exported from the folder's weights into the upload; the folder is not touched
            from .onnx_export import ONNX_FILE, export_folder

            export_folder(model_dir, staging / ONNX_FILE)
            files = [*files, ONNX_FILE]
        # Staged files are hard links to the folder's: the card is a new file, never written through one (a
        # readme.md of the user's is README.md on a case-insensitive disk).
        (staging / CARD_NAME).unlink(missing_ok=True)
        card.save(staging / CARD_NAME)
        with hub_errors(f"uploading {model_dir} to {repo_id} (branch {branch})", api.endpoint, where):
            commit = api.upload_folder(repo_id=repo_id, folder_path=staging, revision=branch,
                                       commit_message=message, repo_type="model", delete_patterns=delete)
    return PushResult(
        repo_id=repo_id, url=str(repo_url).rstrip("/"), revision=branch, commit=commit.oid,
        changed=commit.oid != head, files=sorted({*files, CARD_NAME}), left_out=left_out,
        warnings=onnx_plan.warnings + notes,
    )


@dataclass
class OnnxPlan:
    files: list[str]  # the files to push from the folder (its onnx/ left out when it is stale and replaced)
    export: bool  # export into the upload
    pushed: bool  # the upload has onnx/model.onnx (the folder's or a fresh export)
    warnings: list[str] = field(default_factory=list)


def plan_onnx(model_dir: Path, files: list[str], export: bool) -> OnnxPlan:
    """What a push does with ONNX. The folder's `onnx/` goes up as it is when its model.onnx was exported from
    the folder's weights (the export records their hash); a stale one is refused, or replaced in the upload with
    `export` (--onnx), which also exports a folder that has none. Checked before any Hub request."""
    ours = [name for name in files if name.startswith(ONNX_FOLDER)]
    has_export = f"{ONNX_FOLDER}model.onnx" in ours
    if not has_export and not export:
        return OnnxPlan(files, export=False, pushed=False)
    if export:
        from .onnx_export import check_exportable

        check_exportable(model_dir)  # the onnx extra is installed, the model can be traced
    from .onnx_export import is_current_export

    try:
        current = is_current_export(model_dir)
    except ImportError:  # the onnx package is missing: the folder's export cannot be read
        current = None
    if has_export and current:
        return OnnxPlan(files, export=False, pushed=True)
    if has_export and current is None:
        return OnnxPlan(files, export=False, pushed=True, warnings=[
            f"{model_dir / ONNX_FOLDER}model.onnx is pushed unchecked: reading which weights it was exported from "
            'needs the onnx package (pip install "tinygpt[onnx]")'])
    if has_export and not export:
        raise ValueError(
            f"{model_dir / ONNX_FOLDER}model.onnx was exported from other weights than "
            f"{model_dir / 'model.safetensors'}: export it again (tinygpt export onnx {model_dir} --overwrite) or push "
            "with --onnx, which exports into the upload and leaves the folder as it is"
        )
    return OnnxPlan([name for name in files if name not in ours], export=True, pushed=True)


def stale_remote_onnx(info, model_dir: Path) -> list[str] | None:
    """`delete_patterns` for a push without an ONNX export: the repo's `onnx/` when the weights being pushed are
    not the ones it has (so not the ones its export was made from). None when there is nothing to remove."""
    siblings = {s.rfilename: s for s in info.siblings or []}
    if not any(name.startswith(ONNX_FOLDER) for name in siblings):
        return None
    remote = siblings.get("model.safetensors")
    if remote is not None and _same_file(remote, model_dir / "model.safetensors"):
        return None
    return [f"{ONNX_FOLDER}*"]


def _same_file(sibling, path: Path) -> bool:
    """Whether a repo file (model_info with files_metadata) has `path`'s content: its LFS sha256, or its git blob id."""
    import hashlib

    lfs = getattr(sibling, "lfs", None)
    if lfs:
        digest = hashlib.sha256()
    elif getattr(sibling, "blob_id", None):
        digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)  # git's blob id: a header, then the content
    else:
        return False  # unknown: treat the weights as new
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == (lfs.sha256 if lfs else sibling.blob_id)


def check_shareable_folder(model_dir: Path) -> None:
    """A folder that makes a loadable repo: a valid tinygpt model with its code files and tokenizer."""
    check_local_folder(model_dir, missing_hint="give the folder that train.py or convert-seed wrote")
    check_model_dir(model_dir)  # config model_type, weights file, tensor names and shapes
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"{model_dir}: missing {', '.join(missing)}; a shared tinygpt repo needs them to load without tinygpt "
            "(save the model and the tokenizer with save_pretrained into this folder)"
        )
    auto_map = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("auto_map") or {}
    if "AutoModelForCausalLM" not in auto_map:
        raise ModelLoadError(
            f"{model_dir}: config.json has no auto_map for AutoModelForCausalLM, so the repo would not load "
            "with trust_remote_code; save it again with tinygpt's save_pretrained (import tinygpt first)"
        )
    code_files = _tokenizer_code_files(model_dir)
    missing = [name for name in code_files if not (model_dir / name).is_file()]
    if missing:
        raise ModelLoadError(
            f"{model_dir}: tokenizer_config.json names {', '.join(missing)} (auto_map) but the file is missing; save "
            "the tokenizer again with tinygpt's save_pretrained"
        )


def _tokenizer_code_files(model_dir: Path) -> list[str]:
    """The code files that tokenizer_config.json's auto_map needs ("tokenization_tinygpt.CharTokenizer" ->
    tokenization_tinygpt.py). A folder saved before the tokenizer travelled as code has none."""
    try:
        config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    refs = auto_map.get("AutoTokenizer") if isinstance(auto_map, dict) else auto_map  # a list: the old format
    if isinstance(refs, str):
        refs = [refs]
    return sorted({ref.split("--")[-1].rsplit(".", 1)[0] + ".py" for ref in refs or [] if isinstance(ref, str)})


def select_files(model_dir: Path, include_training_state: bool = False) -> tuple[list[str], list[str]]:
    """(files to push, training-state files left out): relative POSIX paths, sorted.

    README.md is not listed: the push writes a fresh card. Hidden files and Python caches are skipped.
    """
    files, left_out = [], []
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if any(_matches(part, SKIPPED_PATTERNS) for part in relative.parts) or not path.is_file():
            continue
        name = relative.as_posix()
        if name == CARD_NAME:
            continue
        if _matches(relative.name, TRAINING_STATE_PATTERNS) and not include_training_state:
            left_out.append(name)
        else:
            files.append(name)
    return files, left_out


def default_commit_message(model_dir: Path) -> str:
    """E.g. "tinygpt: step 5000, val loss 1.4821" for a trained folder."""
    try:
        state = RunState.load(model_dir)
    except (OSError, ValueError):
        state = None
    if state is None:
        return "Upload tinygpt model"
    message = f"tinygpt: step {state.global_step}"
    record = state.model_eval or {}  # the losses of the weights being pushed
    val = record.get("val_loss", state.best_val_loss)
    if isinstance(val, (int, float)):
        message += f", val loss {val:.4f}"
    return message


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _stage(source: Path, target: Path) -> None:
    """Put a file into the staging folder: a hard link where possible (no copy), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)

