"""A local, in-process Hugging Face Hub-compatible HTTP server for the test suite.

The real ``huggingface_hub`` client (2.x, pointed at this server with ``HF_ENDPOINT`` or an explicit
``endpoint=``) can create repos, push files, list and download them without any network access::

    with HubServer(tmp_path / "hub") as server:
        api = HfApi(endpoint=server.url, token="hf_test")
        api.create_repo("tester/tiny")
        api.upload_folder(repo_id="tester/tiny", folder_path=folder)
        hf_hub_download("tester/tiny", "config.json", endpoint=server.url)

It can also run as a separate process: ``python tests/hub_server.py --port 0 --root DIR`` prints the URL on
its first stdout line and serves until killed.

Implemented (paths as built by huggingface_hub 2.4.0, ``{type}`` is ``models``/``datasets``/``spaces``):

* ``GET /api/whoami-v2`` (any bearer token is accepted and answers for the user ``username``).
* ``POST /api/repos/create`` (``type``, ``private``/``visibility``, ``sdk`` and Space ``variables``/``secrets``;
  an existing repo answers 409 with ``url`` in the body, as the Hub does, so ``exist_ok=True`` works),
  ``DELETE /api/repos/delete``, ``PUT /api/{type}/{repo_id}/settings`` (``private`` only).
  New repos get an initial commit with ``.gitattributes`` (plus a ``README.md`` carrying the ``sdk`` for
  Spaces), like on the Hub.
* ``GET /api/{type}/{repo_id}`` and ``.../revision/{rev}``: ``id``, ``sha``, ``siblings``, ``private``,
  ``lastModified``, ``createdAt``, ``cardData`` (flat YAML front matter of README.md only), ``sdk`` and
  ``runtime`` for Spaces; ``?blobs=true`` adds sibling sizes and blob ids.
* ``GET /api/{type}/{repo_id}/tree/{rev}[/{path}]`` (``recursive`` or not), ``POST .../paths-info/{rev}``.
* ``POST .../preupload/{rev}``: every file answers ``"uploadMode": "regular"`` (with the blob ``oid`` of an
  existing identical path so the client can skip unchanged files) => the client sends all contents base64-inline
  in the commit NDJSON and never starts an LFS or Xet transfer.
* ``POST .../commit/{branch}``: NDJSON ``header`` (``summary``, ``description``, ``parentCommit``: 412 if it is
  not the branch head), ``file``, ``deletedFile``, ``deletedFolder``. Each commit gets a new 40-hex sha on top
  of the branch head; older commits stay downloadable by sha.
* ``GET .../commits/{rev}`` (first-parent history, newest first), ``GET .../refs``,
  ``POST/DELETE .../branch/{branch}`` (``startingPoint``), ``POST .../tag/{rev}``, ``DELETE .../tag/{tag}``.
* ``HEAD``/``GET /[datasets/|spaces/]{repo_id}/resolve/{rev}/{path}`` with ``rev`` a branch, a tag or a
  commit sha: ``X-Repo-Commit``, ``ETag`` (git blob sha1, as the Hub does for non-LFS files),
  ``Content-Length``, single ``Range`` requests. No ``X-Xet-Hash`` header is ever sent, so downloads
  stay plain HTTP even with ``hf_xet`` installed.
* Space ``variables`` and ``secrets`` (``GET``/``POST``/``DELETE /api/spaces/{repo_id}/...``, secret values
  are never returned) and ``GET /api/spaces/{repo_id}/runtime`` (always ``RUNNING`` on ``cpu-basic``).
* ``POST /api/validate-yaml`` always accepts (the client calls it before pushing a README.md).
* Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and
  ``X-Error-Message`` headers plus a JSON ``{"error": ...}`` body, which is how the client picks
  ``RepositoryNotFoundError``, ``RevisionNotFoundError`` and ``RemoteEntryNotFoundError``.
* Test knobs: ``require_token=True`` makes write endpoints answer 401 without an ``Authorization: Bearer``
  header (and hides private repos from anonymous readers, answering 404 as the Hub does);
  ``fail_with = 503`` (settable at any time) makes every request answer that status ("Hub down").
  ``requests`` logs every request (method, path, token, status) and ``tokens`` every bearer token seen.

Not implemented: LFS and Xet storage (``lfsFile`` commit lines answer 400, no batch/xet-token endpoints),
auth scopes or token validation (any token is a valid write token for every namespace), organizations,
gated repos, pull requests/discussions (``create_pr`` answers 400), ``.gitignore`` handling in preupload,
``expand`` on tree/paths-info/info (ignored), pagination (every listing is a single page), real git
objects (shas are random, not content hashes of commits/trees), Space builds/hardware, moving or
duplicating repos, and anything outside the routes above (answers 501 with a JSON error naming the route).
State lives in memory and is mirrored to ``root_dir`` (content-addressed blobs + one JSON file per repo),
so a server restarted on the same directory sees the same repos.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
DEFAULT_BRANCH = "main"
# Hub naming rules (simplified): also keeps repo ids safe to use as directory names.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")

_GITATTRIBUTES = (
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.ckpt filter=lfs diff=lfs merge=lfs -text\n"
    "*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    "*.onnx filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
    "*.pth filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.zip filter=lfs diff=lfs merge=lfs -text\n"
)


# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------


def git_blob_sha(data: bytes) -> str:
    """Git object id of a blob: what the Hub uses as ETag and tree ``oid`` of non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def now_iso() -> str:
    """UTC timestamp in the one format ``huggingface_hub.utils.parse_datetime`` accepts."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _parse_scalar(value: str):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if value.startswith("[") and value.endswith("]"):
        return [_parse_scalar(item) for item in value[1:-1].split(",") if item.strip()]
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~", ""):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def parse_card_metadata(text: str) -> dict | None:
    """Parse the YAML front matter of a README.md, flat keys only (stdlib has no YAML parser).

    Supports ``key: scalar``, ``key: [a, b]`` and ``key:`` followed by ``- item`` lines. Nested mappings
    are skipped. Good enough for ``license``, ``tags``, ``sdk``, ``library_name``...
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return None
    meta: dict = {}
    list_key = None
    for line in lines[1:end]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t-":
            if list_key is not None and stripped.startswith("- ") and ":" not in stripped:
                meta[list_key].append(_parse_scalar(stripped[2:]))
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if value.strip():
            meta[key] = _parse_scalar(value)
            list_key = None
        else:
            meta[key] = []
            list_key = key
    # `key:` with no list items below is YAML null
    return {k: (None if v == [] else v) for k, v in meta.items()}


class HubError(Exception):
    """An HTTP error answered the way the Hub does (status, X-Error-Code/Message headers, JSON body)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body or {}


def repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")


def revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def entry_not_found(path: str, commit: str) -> HubError:
    # X-Repo-Commit lets the client cache the non-existence of the file for this commit.
    return HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit})


def bad_request(message: str) -> HubError:
    return HubError(400, message)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def json_response(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})


def error_response(error: HubError) -> Response:
    headers = dict(error.headers)
    # Header values must be latin-1: keep the message ASCII and on one line.
    headers["X-Error-Message"] = error.message.encode("ascii", "replace").decode().replace("\n", " ")
    if error.code:
        headers["X-Error-Code"] = error.code
    return json_response({"error": error.message, **error.body}, error.status, headers)


@dataclass
class Request:
    method: str
    path: str  # still percent-encoded
    query: dict
    headers: dict  # lower-cased names
    body: bytes
    token: str | None

    def json(self):
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise bad_request(f"Invalid JSON body: {e}") from e

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


# ---------------------------------------------------------------------------------------------------------
# Storage: content-addressed blobs + one JSON document per repo, all under root_dir
# ---------------------------------------------------------------------------------------------------------


class HubStore:
    """Repos, branches and commits. Every commit stores its full file map ``{path: {oid, size}}``."""

    def __init__(self, root_dir: str | os.PathLike):
        self.root = Path(root_dir)
        self.blobs_dir = self.root / "blobs"
        self.repos_dir = self.root / "repos"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], dict] = {}
        self._counter = 0
        for path in sorted(self.repos_dir.glob("*/*/*/repo.json")):
            repo = json.loads(path.read_text())
            self.repos[(repo["type"], repo["id"])] = repo

    # -- blobs ---------------------------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        oid = git_blob_sha(data)
        path = self.blobs_dir / oid
        if not path.exists():
            tmp = path.with_suffix(f".tmp{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: concurrent readers never see a partial blob
        return oid

    def read_blob(self, oid: str) -> bytes:
        return (self.blobs_dir / oid).read_bytes()

    # -- repos ---------------------------------------------------------------------------------------------

    def _repo_file(self, repo: dict) -> Path:
        return self.repos_dir / f"{repo['type']}s" / repo["id"] / "repo.json"

    def save(self, repo: dict) -> None:
        path = self._repo_file(repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(repo, indent=1))
        os.replace(tmp, path)

    def delete(self, repo: dict) -> None:
        del self.repos[(repo["type"], repo["id"])]
        path = self._repo_file(repo)
        path.unlink(missing_ok=True)
        path.parent.rmdir()

    def create(self, repo_type: str, repo_id: str, *, private: bool, sdk: str | None, author: str) -> dict:
        repo = {
            "type": repo_type,
            "id": repo_id,
            "uid": uuid.uuid4().hex[:24],
            "private": private,
            "sdk": sdk,
            "createdAt": now_iso(),
            "branches": {},
            "tags": {},
            "commits": {},
            "variables": {},
            "secrets": {},
        }
        initial = {".gitattributes": _GITATTRIBUTES.encode()}
        if repo_type == "space":
            initial["README.md"] = _space_readme(repo_id.split("/")[-1], sdk).encode()
        files = {path: {"oid": self.put_blob(data), "size": len(data)} for path, data in initial.items()}
        repo["branches"][DEFAULT_BRANCH] = self.new_commit(repo, None, files, "initial commit", "", author)
        self.repos[(repo_type, repo_id)] = repo
        self.save(repo)
        return repo

    def new_commit(self, repo: dict, parent: str | None, files: dict, title: str, message: str,
                   author: str) -> str:
        """Record a commit and return its sha (random but unique: hash of parent, content, time, counter)."""
        self._counter += 1
        seed = json.dumps([parent, files, title, message, time.time_ns(), self._counter, repo["uid"]])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo["commits"][sha] = {
            "parents": [parent] if parent else [],
            "files": files,
            "title": title,
            "message": message,
            "date": now_iso(),
            "author": author,
        }
        return sha

    @staticmethod
    def resolve(repo: dict, revision: str) -> str | None:
        """Branch, tag, full commit sha or unambiguous sha prefix (>= 7 chars) -> commit sha."""
        if revision.startswith("refs/heads/"):
            revision = revision[len("refs/heads/"):]
        elif revision.startswith("refs/tags/"):
            return repo["tags"].get(revision[len("refs/tags/"):])
        if revision in repo["branches"]:
            return repo["branches"][revision]
        if revision in repo["tags"]:
            return repo["tags"][revision]
        revision = revision.lower()
        if revision in repo["commits"]:
            return revision
        if len(revision) >= 7 and re.fullmatch(r"[0-9a-f]+", revision):
            matches = [sha for sha in repo["commits"] if sha.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        return None


def _space_readme(name: str, sdk: str | None) -> str:
    app_file = {"gradio": "app_file: app.py\n", "streamlit": "app_file: app.py\n"}.get(sdk or "", "")
    return (
        f"---\ntitle: {name}\nemoji: 🚀\ncolorFrom: blue\ncolorTo: green\nsdk: {sdk}\n{app_file}"
        "pinned: false\n---\n\nCheck out the configuration reference at "
        "https://huggingface.co/docs/hub/spaces-config-reference\n"
    )


def _tree_oid(entries: list) -> str:
    return hashlib.sha1(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def _list_tree(files: dict, prefix: str, recursive: bool) -> list[dict]:
    """Tree entries (files and directories) under ``prefix`` ("" = root), like GET /api/.../tree."""
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    dirs: dict[str, list] = {}
    entries = []
    for path in sorted(files):
        if not path.startswith(base):
            continue
        rest = path[len(base):]
        parts = rest.split("/")
        # every ancestor directory of the file (only the first level when not recursive)
        for depth in range(1, len(parts) if recursive else min(2, len(parts))):
            dirs.setdefault(base + "/".join(parts[:depth]), []).append(path)
        if recursive or len(parts) == 1:
            info = files[path]
            entries.append({"type": "file", "oid": info["oid"], "size": info["size"], "path": path})
    for path, children in dirs.items():
        entries.append({"type": "directory", "oid": _tree_oid([[c, files[c]["oid"]] for c in children]),
                        "size": 0, "path": path})
    return sorted(entries, key=lambda e: (e["type"] != "directory", e["path"]))


def _validate_path(path: str) -> str:
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
        raise bad_request(f"Invalid path in repo: {path!r}")
    return path


# ---------------------------------------------------------------------------------------------------------
# The Hub API: pure request -> response logic, no sockets
# ---------------------------------------------------------------------------------------------------------

_REPO = r"/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
_ROUTES: list[tuple[str, re.Pattern, str, bool]] = [
    # (methods, path pattern, handler method, is a write endpoint)
    ("GET", r"/api/whoami-v2", "whoami", False),
    ("POST", r"/api/validate-yaml", "validate_yaml", False),
    ("POST", r"/api/repos/create", "create_repo", True),
    ("DELETE", r"/api/repos/delete", "delete_repo", True),
    ("GET", _REPO, "repo_info", False),
    ("GET", _REPO + r"/revision/(?P<rev>[^/]+)", "repo_info", False),
    ("GET", _REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree", False),
    ("POST", _REPO + r"/paths-info/(?P<rev>[^/]+)", "paths_info", False),
    ("POST", _REPO + r"/preupload/(?P<rev>[^/]+)", "preupload", True),
    ("POST", _REPO + r"/commit/(?P<rev>[^/]+)", "commit", True),
    ("GET", _REPO + r"/commits/(?P<rev>[^/]+)", "list_commits", False),
    ("GET", _REPO + r"/refs", "list_refs", False),
    ("POST", _REPO + r"/branch/(?P<branch>[^/]+)", "create_branch", True),
    ("DELETE", _REPO + r"/branch/(?P<branch>[^/]+)", "delete_branch", True),
    ("POST", _REPO + r"/tag/(?P<rev>[^/]+)", "create_tag", True),
    ("DELETE", _REPO + r"/tag/(?P<tag>[^/]+)", "delete_tag", True),
    ("PUT", _REPO + r"/settings", "update_settings", True),
    ("GET POST DELETE", r"/api/spaces/(?P<repo>[^/]+/[^/]+)/(?P<kind>variables|secrets)", "space_kv", True),
    ("GET", r"/api/spaces/(?P<repo>[^/]+/[^/]+)/runtime", "space_runtime", False),
    ("GET HEAD", r"/(?:(?P<prefix>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
     "resolve", False),
]
_ROUTES = [(methods.split(), re.compile(pattern), name, write) for methods, pattern, name, write in _ROUTES]


class HubApp:
    """Dispatches one parsed request to a handler method. Thread-safe: one lock around all state."""

    def __init__(self, store: HubStore, server: "HubServer"):
        self.store = store
        self.server = server  # read live knobs (fail_with, require_token) on every request
        self.lock = threading.RLock()

    def handle(self, request: Request) -> Response:
        try:
            if self.server.fail_with:
                raise HubError(self.server.fail_with, f"Simulated Hub outage (fail_with={self.server.fail_with})")
            for methods, pattern, name, write in _ROUTES:
                match = pattern.fullmatch(request.path)
                if match and request.method in methods:
                    if write and self.server.require_token and not request.token:
                        raise HubError(401, "Unauthorized: this endpoint requires an 'Authorization: Bearer' token")
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    with self.lock:
                        return getattr(self, name)(request, **params)
            raise HubError(501, f"Not implemented by the local test Hub server: {request.method} {request.path}")
        except HubError as error:
            return error_response(error)
        except Exception as error:  # a server bug: make it visible in the client's exception
            traceback.print_exc()
            return error_response(HubError(500, f"Test Hub server error: {error!r}"))

    # -- lookups -------------------------------------------------------------------------------------------

    @property
    def username(self) -> str:
        return self.server.username

    def _repo(self, request: Request, type: str, repo: str) -> dict:
        repo_type = REPO_TYPES.get(type, type)
        found = self.store.repos.get((repo_type, repo))
        # Like the Hub, a private repo is indistinguishable from a missing one for anonymous callers.
        hidden = found is not None and found["private"] and self.server.require_token and not request.token
        if found is None or hidden:
            raise repo_not_found(repo_type, repo)
        return found

    def _commit_sha(self, repo: dict, revision: str) -> str:
        sha = self.store.resolve(repo, revision)
        if sha is None:
            raise revision_not_found(revision)
        return sha

    def _files(self, repo: dict, revision: str) -> tuple[str, dict]:
        sha = self._commit_sha(repo, revision)
        return sha, repo["commits"][sha]["files"]

    def _repo_url(self, repo: dict) -> str:
        return f"{self.server.url}/{URL_PREFIXES[repo['type']]}{repo['id']}"

    # -- account -------------------------------------------------------------------------------------------

    def whoami(self, request: Request) -> Response:
        if not request.token:
            raise HubError(401, "Invalid credentials in Authorization header")
        return json_response({
            "type": "user",
            "id": "0" * 24,
            "name": self.username,
            "fullname": self.username,
            "email": f"{self.username}@example.com",
            "emailVerified": True,
            "isPro": False,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test-token", "role": "write"}},
        })

    def validate_yaml(self, request: Request) -> Response:
        return json_response({"errors": [], "warnings": []})

    # -- repos ---------------------------------------------------------------------------------------------

    def create_repo(self, request: Request) -> Response:
        payload = request.json()
        name, namespace = payload.get("name") or "", payload.get("organization") or self.username
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise bad_request(f"Unsupported repo type: {repo_type}")
        if not (_NAME_RE.fullmatch(name) and _NAME_RE.fullmatch(namespace)) or ".." in name or "--" in name:
            raise bad_request(f"Invalid repo name: {namespace}/{name}")
        sdk = payload.get("sdk")
        if repo_type == "space" and not sdk:
            raise bad_request("A Space needs an sdk (gradio, streamlit, docker or static)")
        repo_id = f"{namespace}/{name}"
        existing = self.store.repos.get((repo_type, repo_id))
        if existing is not None:
            # The Hub answers 409 with the url: `create_repo(exist_ok=True)` reads `url` from this body.
            raise HubError(409, f"You already created this {repo_type} repo", body={"url": self._repo_url(existing)})
        if "visibility" in payload:
            private = payload["visibility"] != "public"
        else:
            private = bool(payload.get("private"))
        repo = self.store.create(repo_type, repo_id, private=private, sdk=sdk, author=self.username)
        for item in payload.get("variables") or []:
            self._set_kv(repo["variables"], item)
        for item in payload.get("secrets") or []:
            self._set_kv(repo["secrets"], item)
        self.store.save(repo)
        return json_response({"url": self._repo_url(repo), "name": repo_id, "id": repo["uid"]})

    def delete_repo(self, request: Request) -> Response:
        payload = request.json()
        repo_id = f"{payload.get('organization') or self.username}/{payload.get('name')}"
        repo = self._repo(request, payload.get("type") or "model", repo_id)
        self.store.delete(repo)
        return json_response({})

    def update_settings(self, request: Request, type: str, repo: str) -> Response:
        found = self._repo(request, type, repo)
        payload = request.json()
        if "private" in payload and payload["private"] is not None:
            found["private"] = bool(payload["private"])
        if "visibility" in payload and payload["visibility"] is not None:
            found["private"] = payload["visibility"] != "public"
        self.store.save(found)
        return json_response({})

    def repo_info(self, request: Request, type: str, repo: str, rev: str = DEFAULT_BRANCH) -> Response:
        found = self._repo(request, type, repo)
        sha, files = self._files(found, rev)
        with_blobs = _is_true(request.arg("blobs"))
        siblings = []
        for path in sorted(files):
            sibling = {"rfilename": path}
            if with_blobs:
                sibling.update(size=files[path]["size"], blobId=files[path]["oid"])
            siblings.append(sibling)
        info = {
            "_id": found["uid"],
            "id": found["id"],
            "author": found["id"].split("/")[0],
            "sha": sha,
            "lastModified": found["commits"][sha]["date"],
            "createdAt": found["createdAt"],
            "private": found["private"],
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(f["size"] for f in files.values()),
        }
        card = None
        if "README.md" in files:
            card = parse_card_metadata(self.store.read_blob(files["README.md"]["oid"]).decode("utf-8", "replace"))
        if card:
            info["cardData"] = card
            info["tags"] = [t for t in card.get("tags") or [] if isinstance(t, str)]
            for key in ("library_name", "pipeline_tag"):
                if found["type"] == "model" and isinstance(card.get(key), str):
                    info[key] = card[key]
        if found["type"] == "space":
            info["sdk"] = (card or {}).get("sdk") or found["sdk"]
            info["runtime"] = self._runtime()
            info["subdomain"] = found["id"].replace("/", "-").lower()
        return json_response(info)

    # -- listings ------------------------------------------------------------------------------------------

    def tree(self, request: Request, type: str, repo: str, rev: str, path: str = "") -> Response:
        found = self._repo(request, type, repo)
        sha, files = self._files(found, rev)
        path = path.strip("/")
        if path in files:  # a file path lists itself
            return json_response([e for e in _list_tree(files, "", True) if e["path"] == path])
        entries = _list_tree(files, path, _is_true(request.arg("recursive")))
        if path and not entries:
            raise entry_not_found(path, sha)
        return json_response(entries)

    def paths_info(self, request: Request, type: str, repo: str, rev: str) -> Response:
        found = self._repo(request, type, repo)
        _, files = self._files(found, rev)
        # The client sends a form (`paths=a&paths=b`); accept JSON too.
        if request.headers.get("content-type", "").startswith("application/json"):
            paths = request.json().get("paths") or []
        else:
            paths = parse_qs(request.body.decode()).get("paths", [])
        everything = _list_tree(files, "", True)
        wanted = {p.strip("/") for p in paths}
        return json_response([e for e in everything if e["path"] in wanted])

    def list_commits(self, request: Request, type: str, repo: str, rev: str) -> Response:
        found = self._repo(request, type, repo)
        sha = self._commit_sha(found, rev)
        formatted = request.arg("expand[]") == "formatted"
        history = []
        while sha:
            commit = found["commits"][sha]
            item = {
                "id": sha,
                "title": commit["title"],
                "message": commit["message"],
                "date": commit["date"],
                "authors": [{"user": commit["author"], "avatar": ""}],
            }
            if formatted:
                item["formatted"] = {"title": commit["title"], "message": commit["message"]}
            history.append(item)
            sha = commit["parents"][0] if commit["parents"] else None
        return json_response(history)

    def list_refs(self, request: Request, type: str, repo: str) -> Response:
        found = self._repo(request, type, repo)

        def refs(kind: str, names: dict) -> list:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in sorted(names.items())]

        return json_response({
            "branches": refs("heads", found["branches"]),
            "tags": refs("tags", found["tags"]),
            "converts": [],
            "pullRequests": [],
        })

    # -- refs ----------------------------------------------------------------------------------------------

    def create_branch(self, request: Request, type: str, repo: str, branch: str) -> Response:
        found = self._repo(request, type, repo)
        start = request.json().get("startingPoint") or DEFAULT_BRANCH
        sha = self._commit_sha(found, start)
        if branch in found["branches"]:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        found["branches"][branch] = sha
        self.store.save(found)
        return json_response({})

    def delete_branch(self, request: Request, type: str, repo: str, branch: str) -> Response:
        found = self._repo(request, type, repo)
        if branch not in found["branches"]:
            raise revision_not_found(branch)
        if branch == DEFAULT_BRANCH:
            raise HubError(403, "Cannot delete the default branch")
        del found["branches"][branch]
        self.store.save(found)
        return json_response({})

    def create_tag(self, request: Request, type: str, repo: str, rev: str) -> Response:
        found = self._repo(request, type, repo)
        sha = self._commit_sha(found, rev)
        tag = request.json().get("tag") or ""
        if not tag:
            raise bad_request("Missing tag name")
        if tag in found["tags"]:
            raise HubError(409, f"Tag already exists: {tag}")
        found["tags"][tag] = sha
        self.store.save(found)
        return json_response({})

    def delete_tag(self, request: Request, type: str, repo: str, tag: str) -> Response:
        found = self._repo(request, type, repo)
        if found["tags"].pop(tag, None) is None:
            raise revision_not_found(tag)
        self.store.save(found)
        return json_response({})

    # -- uploads -------------------------------------------------------------------------------------------

    def preupload(self, request: Request, type: str, repo: str, rev: str) -> Response:
        found = self._repo(request, type, repo)
        sha, files = self._files(found, rev)
        answers = []
        for item in request.json().get("files") or []:
            answer = {"path": item["path"], "uploadMode": "regular", "shouldIgnore": False}
            if item["path"] in files:
                # Same oid as the client's local git-sha1 => the client drops the unchanged file from the commit.
                answer["oid"] = files[item["path"]]["oid"]
            answers.append(answer)
        return json_response({"files": answers, "commitOid": sha})

    def commit(self, request: Request, type: str, repo: str, rev: str) -> Response:
        found = self._repo(request, type, repo)
        if _is_true(request.arg("create_pr")):
            raise bad_request("Pull requests (create_pr) are not supported by the local test Hub server")
        branch = rev[len("refs/heads/"):] if rev.startswith("refs/heads/") else rev
        if branch not in found["branches"]:
            if self.store.resolve(found, rev) is not None:
                raise bad_request(f"Can only commit to a branch, not to {rev!r}")
            raise revision_not_found(rev)
        head = found["branches"][branch]

        lines = [json.loads(line) for line in request.body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise bad_request("The commit payload must start with a 'header' line")
        header = lines[0]["value"]
        parent = (header.get("parentCommit") or "").lower()
        if parent and not head.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")

        files = dict(found["commits"][head]["files"])
        for line in lines[1:]:
            self._apply_operation(files, line.get("key"), line.get("value") or {}, head)

        sha = self.store.new_commit(found, head, files, header.get("summary") or "", header.get("description") or "",
                                    self.username)
        found["branches"][branch] = sha
        self.store.save(found)
        return json_response({
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{self._repo_url(found)}/commit/{sha}",
            "commitMessage": header.get("summary"),
            "pullRequestUrl": None,
        })

    def _apply_operation(self, files: dict, key: str | None, value: dict, head: str) -> None:
        raw_path = str(value.get("path", ""))
        # Folder deletions may carry a trailing slash ("data/"); file paths must be exact.
        path = _validate_path(raw_path.strip("/") if key == "deletedFolder" else raw_path)
        if key == "file":
            content = value.get("content", "")
            data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            files[path] = {"oid": self.store.put_blob(data), "size": len(data)}
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise entry_not_found(f"A file with this name doesn't exist: {path}", head)
        elif key == "deletedFolder":
            doomed = [p for p in files if p.startswith(path + "/")]
            if not doomed:
                raise entry_not_found(f"A folder with this name doesn't exist: {path}", head)
            for p in doomed:
                del files[p]
        elif key == "lfsFile":
            raise bad_request("LFS files are not supported by the local test Hub server (preupload says 'regular')")
        else:
            raise bad_request(f"Unsupported commit operation: {key!r}")

    # -- downloads -----------------------------------------------------------------------------------------

    def resolve(self, request: Request, repo: str, rev: str, path: str, prefix: str = "models") -> Response:
        found = self._repo(request, prefix, repo)
        sha, files = self._files(found, rev)
        if path not in files:
            raise entry_not_found(path, sha)
        info = files[path]
        data = self.store.read_blob(info["oid"])
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            # What `hf_hub_download` needs: commit for the cache layout, ETag as blob name. No X-Xet-Hash.
            "X-Repo-Commit": sha,
            "ETag": f'"{info["oid"]}"',
        }
        range_header = request.headers.get("range")
        if range_header:
            return _range_response(data, range_header, headers)
        return Response(200, data, headers)

    # -- spaces --------------------------------------------------------------------------------------------

    @staticmethod
    def _runtime() -> dict:
        return {"stage": "RUNNING", "hardware": {"current": "cpu-basic", "requested": "cpu-basic"},
                "storage": None, "gcTimeout": 172800, "replicas": {"current": 1, "requested": 1}}

    @staticmethod
    def _set_kv(store: dict, item: dict) -> None:
        store[item["key"]] = {"value": item.get("value", ""), "description": item.get("description"),
                              "updatedAt": now_iso()}

    def space_kv(self, request: Request, repo: str, kind: str) -> Response:
        found = self._repo(request, "space", repo)
        values = found[kind]
        if request.method == "POST":
            self._set_kv(values, request.json())
        elif request.method == "DELETE":
            values.pop(request.json().get("key"), None)
        self.store.save(found)
        if kind == "secrets":  # write-only: never send values back
            return json_response({k: {"description": v["description"], "updatedAt": v["updatedAt"]}
                                  for k, v in values.items()})
        return json_response(values)

    def space_runtime(self, request: Request, repo: str) -> Response:
        self._repo(request, "space", repo)
        return json_response(self._runtime())


def _range_response(data: bytes, range_header: str, headers: dict) -> Response:
    """Single ``bytes=start-end`` / ``bytes=start-`` / ``bytes=-suffix`` range, as used to resume downloads."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", range_header)
    size = len(data)
    if not match or match.groups() == ("", ""):
        return Response(200, data, headers)
    start, end = match.groups()
    if start:
        first, last = int(start), min(int(end) if end else size - 1, size - 1)
    else:
        first, last = max(size - int(end), 0), size - 1
    if first >= size or first > last:
        return Response(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
    return Response(206, data[first:last + 1], {**headers, "Content-Range": f"bytes {first}-{last}/{size}"})


# ---------------------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the Hub: every response carries Content-Length
    server_version = "LocalTestHub/1.0"
    timeout = 60  # idle keep-alive connections are dropped eventually

    def setup(self):
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.connections.discard(self.connection)

    def _handle(self):
        hub: HubServer = self.server.hub
        # Always consume the body first, even for errors: otherwise leftover bytes corrupt the next
        # request on this keep-alive connection.
        body = self._read_body()
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        auth = headers.get("authorization", "")
        token = (auth[len("bearer "):].strip() or None) if auth.lower().startswith("bearer ") else None
        request = Request(self.command, split.path, parse_qs(split.query), headers, body, token)
        response = hub.app.handle(request)
        hub._record(request, response)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        # For HEAD, Content-Length is the size the GET would return (the client reads file sizes from it).
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def log_message(self, format, *args):
        if self.server.hub.verbose:
            super().log_message(format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, hub: "HubServer"):
        self.hub = hub
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)


class HubServer:
    """Local Hub: ``HubServer(root_dir).start()``, then point the client at ``.url``.

    Knobs (plain attributes, read on every request): ``require_token``, ``fail_with`` (e.g. 503),
    ``username`` (the account answering whoami and owning repos created without an organization).
    Introspection: ``requests`` (list of ``{"method", "path", "token", "status"}``), ``tokens``.
    """

    def __init__(self, root_dir: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0,
                 require_token: bool = False, fail_with: int | None = None, username: str = "tester",
                 verbose: bool = False):
        self.root_dir = Path(root_dir)
        self.host = host
        self.port = port
        self.require_token = require_token
        self.fail_with = fail_with
        self.username = username
        self.verbose = verbose
        self.requests: list[dict] = []
        self.store = HubStore(self.root_dir)
        self.app = HubApp(self.store, self)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def tokens(self) -> list[str]:
        return [r["token"] for r in self.requests if r["token"]]

    def start(self) -> "HubServer":
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        # A short poll interval keeps stop() (which waits for the serve loop to notice) fast in fixtures.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        # Keep-alive handler threads would otherwise sit on their sockets until the idle timeout.
        for conn in list(self._httpd.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._httpd = None
        self.port = 0

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _record(self, request: Request, response: Response) -> None:
        self.requests.append({"method": request.method, "path": request.path, "token": request.token,
                              "status": response.status})

    # -- helpers for tests (no HTTP) -----------------------------------------------------------------------

    def read_file(self, repo_id: str, path: str, *, revision: str = DEFAULT_BRANCH, repo_type: str = "model") -> bytes:
        """Content of ``path`` at ``revision``, straight from the store (KeyError if missing)."""
        with self.app.lock:
            repo = self.store.repos[(repo_type, repo_id)]
            sha = self.store.resolve(repo, revision)
            if sha is None:
                raise KeyError(revision)
            return self.store.read_blob(repo["commits"][sha]["files"][path]["oid"])

    def space_secrets(self, repo_id: str) -> dict[str, str]:
        """Secret values of a Space (the API never returns them)."""
        with self.app.lock:
            return {k: v["value"] for k, v in self.store.repos[("space", repo_id)]["secrets"].items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Hugging Face Hub-compatible server for tests.")
    parser.add_argument("--root", required=True, help="directory holding repos and blobs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--require-token", action="store_true")
    parser.add_argument("--fail-with", type=int, default=None, help="answer every request with this status")
    parser.add_argument("--username", default="tester")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = HubServer(args.root, host=args.host, port=args.port, require_token=args.require_token,
                       fail_with=args.fail_with, username=args.username, verbose=args.verbose).start()
    print(server.url, flush=True)  # first stdout line: callers read the URL from it
    try:
        server._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
