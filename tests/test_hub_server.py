"""Tests of tests/hub_server.py through the REAL huggingface_hub client.

huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE... once, at import time (constants.py). In this
process the client is therefore pointed at the server with explicit `endpoint=` arguments, and the `hf_env`
fixture patches both the environment and the already-imported constants so every test gets a fresh HF_HOME.
Code that relies on HF_ENDPOINT itself runs in a subprocess (see `run_client`).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hub_server import HubServer

TOKEN = "hf_local_test_token"
HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def hf_env(tmp_path, monkeypatch):
    """Fresh HF_HOME, no offline mode, no telemetry, no ambient token: nothing leaks between tests."""
    home = tmp_path / "hf_home"
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_ENDPOINT", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    patched = {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for name, value in patched.items():
        monkeypatch.setattr(constants, name, value)
    return home


@pytest.fixture
def api(hub_server):
    return HfApi(endpoint=hub_server.url, token=TOKEN)


@pytest.fixture
def folder(tmp_path):
    """A small model folder: a binary 'weights' file plus JSON and Python files."""
    root = tmp_path / "to_upload"
    (root / "code").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(os.urandom(4096))
    (root / "config.json").write_text('{"model_type": "tinygpt", "n_embd": 32}')
    (root / "code" / "modeling_tinygpt.py").write_text("class TinyGPT:\n    pass\n")
    return root


def run_client(code: str, server_url: str, home: Path) -> str:
    """Run client code in a fresh interpreter that sees HF_ENDPOINT before importing huggingface_hub."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=server_url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def local_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


# ---------------------------------------------------------------------------------------------------------


def test_whoami_and_create_repos(api, hub_server):
    assert api.whoami()["name"] == hub_server.username

    url = api.create_repo("tester/tiny-model")
    assert (url.repo_id, url.repo_type) == ("tester/tiny-model", "model")
    space = api.create_repo("tester/tiny-demo", repo_type="space", space_sdk="gradio")
    assert (space.repo_id, space.repo_type) == ("tester/tiny-demo", "space")

    # exist_ok=True on an existing repo: the server answers 409 + url, like the Hub, and the client accepts it.
    again = api.create_repo("tester/tiny-model", exist_ok=True)
    assert again.repo_id == "tester/tiny-model"
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo("tester/tiny-model")
    assert excinfo.value.response.status_code == 409

    info = api.space_info("tester/tiny-demo")
    assert info.sdk == "gradio"
    assert {"README.md", ".gitattributes"} <= {s.rfilename for s in info.siblings}
    assert api.repo_exists("tester/tiny-model")
    assert api.repo_exists("tester/tiny-demo", repo_type="space")
    assert not api.repo_exists("tester/nope")
    assert hub_server.tokens and set(hub_server.tokens) == {TOKEN}


def test_upload_folder_list_and_download(api, hub_server, folder):
    api.create_repo("tester/tiny")
    commit = api.upload_folder(repo_id="tester/tiny", folder_path=folder, commit_message="add model")
    assert len(commit.oid) == 40

    files = api.list_repo_files("tester/tiny")
    assert set(files) == {".gitattributes", "model.safetensors", "config.json", "code/modeling_tinygpt.py"}
    for name in ("model.safetensors", "config.json", "code/modeling_tinygpt.py"):
        path = hf_hub_download("tester/tiny", name, endpoint=hub_server.url)
        assert local_bytes(path) == (folder / name).read_bytes()
        assert f"snapshots/{commit.oid}/" in Path(path).as_posix()

    info = api.model_info("tester/tiny")
    assert info.sha == commit.oid
    assert "model.safetensors" in {s.rfilename for s in info.siblings}
    assert api.file_exists("tester/tiny", "config.json")
    assert not api.file_exists("tester/tiny", "missing.json")

    # Everything went through preupload ("regular") + an inline NDJSON commit: no LFS/Xet endpoint was called.
    paths = [r["path"] for r in hub_server.requests]
    assert any(p.endswith("/preupload/main") for p in paths)
    assert any(p.endswith("/commit/main") for p in paths)
    assert not any("xet" in p or "lfs" in p or "info/" in p for p in paths)


def test_snapshot_download_fresh_home(api, hub_server, folder, tmp_path):
    api.create_repo("tester/tiny")
    commit = api.upload_folder(repo_id="tester/tiny", folder_path=folder)

    snapshot = Path(snapshot_download("tester/tiny", endpoint=hub_server.url, cache_dir=tmp_path / "fresh"))
    assert snapshot.name == commit.oid
    for name in ("model.safetensors", "config.json", "code/modeling_tinygpt.py"):
        assert (snapshot / name).read_bytes() == (folder / name).read_bytes()


def test_second_push_is_a_new_commit_and_old_files_stay_reachable(api, hub_server, folder):
    api.create_repo("tester/tiny")
    first = api.upload_folder(repo_id="tester/tiny", folder_path=folder, commit_message="v1")
    old_config = (folder / "config.json").read_bytes()
    (folder / "config.json").write_text('{"model_type": "tinygpt", "n_embd": 64}')
    second = api.upload_folder(repo_id="tester/tiny", folder_path=folder, commit_message="v2")

    assert second.oid != first.oid
    commits = api.list_repo_commits("tester/tiny")
    assert [c.commit_id for c in commits[:2]] == [second.oid, first.oid]
    assert [c.title for c in commits] == ["v2", "v1", "initial commit"]

    new = hf_hub_download("tester/tiny", "config.json", endpoint=hub_server.url)
    old = hf_hub_download("tester/tiny", "config.json", revision=first.oid, endpoint=hub_server.url)
    assert local_bytes(new) == (folder / "config.json").read_bytes()
    assert local_bytes(old) == old_config

    # Pushing identical content again creates no commit (preupload returns the remote oids).
    third = api.upload_folder(repo_id="tester/tiny", folder_path=folder, commit_message="v3")
    assert third.oid == second.oid


def test_branch_upload_download_and_refs(api, hub_server):
    api.create_repo("tester/tiny")
    main_commit = api.upload_file(path_or_fileobj=b"main", path_in_repo="where.txt", repo_id="tester/tiny")
    api.create_branch("tester/tiny", branch="dev")
    dev_commit = api.upload_file(path_or_fileobj=b"dev", path_in_repo="where.txt", repo_id="tester/tiny",
                                 revision="dev")
    api.upload_file(path_or_fileobj=b"only on dev", path_in_repo="dev.txt", repo_id="tester/tiny", revision="dev")

    assert local_bytes(hf_hub_download("tester/tiny", "where.txt", revision="dev", endpoint=hub_server.url)) == b"dev"
    assert local_bytes(hf_hub_download("tester/tiny", "where.txt", endpoint=hub_server.url)) == b"main"
    assert "dev.txt" not in api.list_repo_files("tester/tiny")
    assert "dev.txt" in api.list_repo_files("tester/tiny", revision="dev")

    refs = api.list_repo_refs("tester/tiny")
    branches = {b.name: b.target_commit for b in refs.branches}
    assert branches["main"] == main_commit.oid
    assert set(branches) == {"main", "dev"} and branches["dev"] != dev_commit.oid  # dev moved on again
    api.create_branch("tester/tiny", branch="dev", exist_ok=True)
    with pytest.raises(HfHubHTTPError):
        api.create_branch("tester/tiny", branch="dev")


def test_model_card_metadata(api, tmp_path):
    api.create_repo("tester/tiny")
    readme = "---\nlicense: mit\nlibrary_name: transformers\ntags:\n- tinygpt\n- char-level\n---\n# Tiny\n"
    api.upload_file(path_or_fileobj=readme.encode(), path_in_repo="README.md", repo_id="tester/tiny")
    info = api.model_info("tester/tiny")
    assert info.card_data.license == "mit"
    assert info.library_name == "transformers"
    assert info.tags == ["tinygpt", "char-level"]


def test_not_found_errors(api, hub_server):
    api.create_repo("tester/tiny")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("tester/does-not-exist")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/does-not-exist", "config.json", endpoint=hub_server.url)
    with pytest.raises(RevisionNotFoundError):
        api.model_info("tester/tiny", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("tester/tiny", ".gitattributes", revision="no-such-branch", endpoint=hub_server.url)
    with pytest.raises(RemoteEntryNotFoundError) as excinfo:
        hf_hub_download("tester/tiny", "missing.json", endpoint=hub_server.url)
    assert isinstance(excinfo.value, EntryNotFoundError)


def test_require_token(tmp_path):
    with HubServer(tmp_path / "hub", require_token=True) as server:
        anonymous = HfApi(endpoint=server.url, token=False)
        with pytest.raises(HfHubHTTPError) as excinfo:
            anonymous.create_repo("tester/tiny")
        assert excinfo.value.response.status_code == 401

        authed = HfApi(endpoint=server.url, token=TOKEN)
        authed.create_repo("tester/tiny")
        authed.create_repo("tester/secret", private=True)
        with pytest.raises(HfHubHTTPError) as excinfo:
            anonymous.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="tester/tiny")
        assert excinfo.value.response.status_code == 401

        assert anonymous.model_info("tester/tiny").id == "tester/tiny"  # public reads need no token
        with pytest.raises(RepositoryNotFoundError):  # private repos are hidden, as on the Hub
            anonymous.model_info("tester/secret")
        assert authed.model_info("tester/secret").private is True
        assert TOKEN in server.tokens


def test_hub_down_fails_fast_and_cache_still_serves(api, hub_server):
    api.create_repo("tester/tiny")
    api.upload_file(path_or_fileobj=b"cached", path_in_repo="a.txt", repo_id="tester/tiny")
    cached = hf_hub_download("tester/tiny", "a.txt", endpoint=hub_server.url)

    hub_server.fail_with = 503
    started = time.monotonic()
    # model_info is a single request (no backoff): the 503 surfaces at once.
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.model_info("tester/tiny")
    assert excinfo.value.response.status_code == 503
    # A download whose file is cached falls back to the cache after one HEAD (no retries).
    assert hf_hub_download("tester/tiny", "a.txt", endpoint=hub_server.url) == cached
    assert time.monotonic() - started < 5

    hub_server.fail_with = None
    assert api.model_info("tester/tiny").id == "tester/tiny"


def test_space_variables_and_secrets(api, hub_server):
    api.create_repo("tester/demo", repo_type="space", space_sdk="gradio",
                    space_variables=[{"key": "MODEL_ID", "value": "tester/tiny"}])
    assert api.get_space_variables("tester/demo")["MODEL_ID"].value == "tester/tiny"
    api.add_space_variable("tester/demo", "TEMPERATURE", "0.8")
    assert set(api.get_space_variables("tester/demo")) == {"MODEL_ID", "TEMPERATURE"}
    api.delete_space_variable("tester/demo", "TEMPERATURE")
    assert set(api.get_space_variables("tester/demo")) == {"MODEL_ID"}

    api.add_space_secret("tester/demo", "HF_TOKEN", "hf_secret")
    assert hub_server.space_secrets("tester/demo") == {"HF_TOKEN": "hf_secret"}
    assert api.get_space_runtime("tester/demo").stage == "RUNNING"


def test_state_survives_a_restart(tmp_path):
    with HubServer(tmp_path / "hub") as server:
        api = HfApi(endpoint=server.url, token=TOKEN)
        api.create_repo("tester/tiny")
        commit = api.upload_file(path_or_fileobj=b"kept", path_in_repo="a.txt", repo_id="tester/tiny")
    with HubServer(tmp_path / "hub") as server:
        path = hf_hub_download("tester/tiny", "a.txt", revision=commit.oid, endpoint=server.url,
                               cache_dir=tmp_path / "cache")
        assert local_bytes(path) == b"kept"


def test_plain_hf_hub_download_with_hf_endpoint_in_subprocess(api, hub_server, folder, tmp_path):
    api.create_repo("tester/tiny")
    api.upload_folder(repo_id="tester/tiny", folder_path=folder)
    code = (
        "from huggingface_hub import constants, hf_hub_download, snapshot_download\n"
        "import os\n"
        "print(constants.ENDPOINT)\n"
        "print(open(hf_hub_download('tester/tiny', 'config.json')).read())\n"
        "print(sorted(os.listdir(snapshot_download('tester/tiny'))))\n"
    )
    endpoint, config, listing = run_client(code, hub_server.url, tmp_path / "sub_home").splitlines()
    assert endpoint == hub_server.url
    assert config == (folder / "config.json").read_text()
    assert listing == str(sorted([".gitattributes", "code", "config.json", "model.safetensors"]))


def test_command_line_server(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "hub_server.py"), "--port", "0", "--root", str(tmp_path / "hub")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        api = HfApi(endpoint=url, token=TOKEN)
        api.create_repo("tester/tiny")
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id="tester/tiny")
        assert local_bytes(hf_hub_download("tester/tiny", "hello.txt", endpoint=url)) == b"hello"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_dataset_tags_deletions_and_paths_info(api, hub_server):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    api.create_repo("tester/corpus", repo_type="dataset")
    api.create_commit(
        "tester/corpus", repo_type="dataset", commit_message="data",
        operations=[CommitOperationAdd("data/a.txt", b"aaa"), CommitOperationAdd("data/b.txt", b"bbb"),
                    CommitOperationAdd("notes.txt", b"n")],
    )
    api.create_tag("tester/corpus", repo_type="dataset", tag="v1")
    api.create_commit("tester/corpus", repo_type="dataset", commit_message="drop data",
                      operations=[CommitOperationDelete("data/")])
    assert api.list_repo_files("tester/corpus", repo_type="dataset") == [".gitattributes", "notes.txt"]

    # The tag still points at the old commit: files are downloadable through it.
    path = hf_hub_download("tester/corpus", "data/a.txt", repo_type="dataset", revision="v1", endpoint=hub_server.url)
    assert local_bytes(path) == b"aaa"
    assert [t.name for t in api.list_repo_refs("tester/corpus", repo_type="dataset").tags] == ["v1"]
    tree = api.list_repo_tree("tester/corpus", repo_type="dataset", revision="v1")
    assert {(type(e).__name__, e.path) for e in tree} == {
        ("RepoFile", ".gitattributes"), ("RepoFile", "notes.txt"), ("RepoFolder", "data")}
    infos = api.get_paths_info("tester/corpus", ["data/b.txt", "nope"], repo_type="dataset", revision="v1")
    assert [(i.path, i.size) for i in infos] == [("data/b.txt", 3)]

    with pytest.raises(RemoteEntryNotFoundError):
        api.delete_file("notes-missing.txt", "tester/corpus", repo_type="dataset")
    api.delete_repo("tester/corpus", repo_type="dataset")
    assert not api.repo_exists("tester/corpus", repo_type="dataset")


def test_raw_http_keep_alive_errors_and_range(api, hub_server):
    """Error answers consume the request body (keep-alive stays usable); Range requests are honoured."""
    import http.client

    api.create_repo("tester/tiny")
    api.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits.txt", repo_id="tester/tiny")
    conn = http.client.HTTPConnection(hub_server.url.removeprefix("http://"), timeout=10)
    try:
        conn.request("POST", "/api/not/a/route", body=b"x" * 10000)
        response = conn.getresponse()
        assert response.status == 501 and b"Not implemented" in response.read()

        conn.request("GET", "/tester/tiny/resolve/main/digits.txt", headers={"Range": "bytes=2-5"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (206, b"2345")
        assert response.getheader("Content-Range") == "bytes 2-5/10"

        conn.request("HEAD", "/tester/tiny/resolve/main/missing.txt")
        response = conn.getresponse()
        response.read()
        assert response.status == 404 and response.getheader("X-Error-Code") == "EntryNotFound"
        assert response.getheader("X-Repo-Commit") == api.model_info("tester/tiny").sha
    finally:
        conn.close()
