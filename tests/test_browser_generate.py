"""Generate in the visitor's browser, the server's side and the sampling: which export and runtime the page gets,
what the routes serve (and refuse), and the JavaScript's choice of the next character against transformers' warpers
(in Node, where it is installed). The page itself runs in tests/test_app_browser_generate.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from app_helpers import REPO, make_model_dir
from tinygpt import browser_files, browser_generate
from tinygpt.browser_files import RUNTIME_DIR, RUNTIME_FILES, find_runtime, space_files
from tinygpt.browser_generate import BrowserGenerate, exported_from, find_or_make_export, sha256_of
from tinygpt.demo import load_model

BUNDLED = REPO / "checkpoints" / "tinyshakespeare"
SAMPLING_JS = REPO / "tinygpt" / "web" / "sampling.js"


def fake_runtime(root: Path, version: str = "1.31.1") -> Path:
    """What `npm ci` leaves: onnxruntime-web's package.json and its WebAssembly build (contents made up)."""
    directory = root / RUNTIME_DIR
    for name in RUNTIME_FILES:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(f"// {name}".encode())
    (directory / "package.json").write_text(json.dumps({"name": "onnxruntime-web", "version": version}))
    return directory


# ------------------------------------------------------------------------------------------------ the export


def test_the_bundled_checkpoint_ships_the_export_of_its_own_weights():
    """The bundled model writes in the browser with nothing to export: its onnx/model.onnx records the sha256 of
    the model.safetensors beside it. A retrained checkpoint without a new export fails here, not on the page."""
    export, reason = find_or_make_export(str(BUNDLED), Path("/nonexistent-cache"))
    assert reason == "" and export is not None, (
        "checkpoints/tinyshakespeare/onnx/model.onnx is not the export of its model.safetensors: run "
        "`tinygpt export onnx checkpoints/tinyshakespeare --overwrite`")
    assert export.path == BUNDLED / "onnx" / "model.onnx" and export.origin == "the model's own onnx/model.onnx"
    assert export.window == BUNDLED / "onnx" / "window.onnx", (
        "checkpoints/tinyshakespeare/onnx/window.onnx is not the window step of its model.safetensors: run "
        "`python -m tinygpt.browser_export checkpoints/tinyshakespeare checkpoints/tinyshakespeare/onnx`")
    assert export.weights_sha256 == sha256_of(BUNDLED / "model.safetensors")


def test_without_the_exporter_a_models_own_export_serves_without_the_window_step(tmp_path, monkeypatch):
    """The window's own graph only speeds the page up: a model that brings its decoder but no window step, on a
    server without the onnx extra, still writes in the browser (the page runs the window on the decoder)."""
    model = tmp_path / "model"
    shutil.copytree(BUNDLED, model, ignore=shutil.ignore_patterns("window.onnx"))
    monkeypatch.setattr(browser_generate, "missing_exporter", lambda: "onnxscript")
    export, reason = find_or_make_export(str(model), tmp_path / "cache")
    assert reason == "" and export.path == model / "onnx" / "model.onnx" and export.window is None


def test_an_export_of_other_weights_is_never_served(tmp_path, monkeypatch):
    """A model folder whose onnx/model.onnx was made before it was trained again would write another model's text
    in the browser: it is passed over, and without the onnx extra the page is told what to run."""
    model = make_model_dir(tmp_path / "model")
    (model / "onnx").mkdir()
    shutil.copyfile(BUNDLED / "onnx" / "model.onnx", model / "onnx" / "model.onnx")
    assert not exported_from(model / "onnx" / "model.onnx", sha256_of(model / "model.safetensors"))
    monkeypatch.setattr(browser_generate, "missing_exporter", lambda: "onnxscript")
    export, reason = find_or_make_export(str(model), tmp_path / "cache")
    assert export is None
    assert reason.startswith("the model's ONNX export is from older weights and this server cannot make one "
                             "(onnxscript is not installed): run `tinygpt export onnx MODEL`")


def test_a_model_without_an_export_is_exported_once_into_the_cache(tmp_path, monkeypatch):
    """Not into the user's folder (a run never writes where it was not asked to): into the cache, under the
    weights' sha256, by `tinygpt export onnx` in a process of its own; the next start finds it there."""
    model = make_model_dir(tmp_path / "model")
    sha = sha256_of(model / "model.safetensors")
    calls = []

    def export(source, out_dir, decoder):  # what the subprocess writes, without the seconds of tracing
        calls.append((source, Path(out_dir), decoder))
        for name in ("onnx/model.onnx", "window.onnx"):
            path = Path(out_dir) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x08\x0a" + b"tinygpt.weights_sha256" + sha.encode())
        return 4.2, ""

    monkeypatch.setattr(browser_generate, "export_in_subprocess", export)
    export_, reason = find_or_make_export(str(model), tmp_path / "cache")
    assert reason == "" and calls == [(str(model), tmp_path / "cache" / sha[:16], True)]
    assert export_.path == tmp_path / "cache" / sha[:16] / "onnx" / "model.onnx"
    assert export_.window == tmp_path / "cache" / sha[:16] / "window.onnx"
    assert export_.origin == "exported by this server in 4 s"
    assert not (model / "onnx").exists()

    again, _ = find_or_make_export(str(model), tmp_path / "cache")
    assert again.path == export_.path and again.origin == "exported by this server (cached)" and len(calls) == 1


@pytest.mark.slow
def test_a_models_first_export_runs_in_a_process_of_its_own(tmp_path):
    """The real thing, as a user's own model meets it on the first visit: `tinygpt export onnx` in a subprocess
    (tracing in the server's process would hold the GIL against every stream), the export found afterwards."""
    model = make_model_dir(tmp_path / "model", block_size=16)
    export, reason = find_or_make_export(str(model), tmp_path / "cache")
    assert reason == "" and export.origin.startswith("exported by this server in ")
    assert export.path.parent.parent.parent == tmp_path / "cache" and export.window.parent == export.path.parent.parent
    import numpy as np
    import onnxruntime

    from tinygpt.demo import load_model

    torch_model = load_model(str(model)).model
    window = torch.randint(0, torch_model.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = torch_model(window, use_cache=False).logits[:, -1].numpy()
    got = onnxruntime.InferenceSession(str(export.window)).run(None, {"input_ids": window.numpy()})[0]
    assert got.shape == (1, torch_model.config.vocab_size) and np.abs(got - expected).max() < 1e-4


# ----------------------------------------------------------------------------------------------- the runtime


def test_the_runtime_is_found_where_npm_ci_puts_it_or_the_reason_says_to_run_it(tmp_path):
    runtime, reason = find_runtime(tmp_path)
    assert runtime is None and "run `npm ci` in the folder of app.py" in reason
    directory = fake_runtime(tmp_path)
    runtime, reason = find_runtime(tmp_path)
    assert reason == "" and runtime.version == "1.31.1" and runtime.directory == directory
    assert runtime.file("ort-wasm-simd-threaded.wasm") == directory / "dist" / "ort-wasm-simd-threaded.wasm"
    assert runtime.file("ort.all.min.mjs") is None and runtime.file("../package.json") is None  # only the WASM build
    (directory / "dist" / "ort-wasm-simd-threaded.wasm").unlink()
    runtime, reason = find_runtime(tmp_path)
    assert runtime is None and "incomplete" in reason
    assert space_files(tmp_path) == [f"tinygpt/web/{name}" for name in browser_files.PAGE_FILES]


def test_package_json_pins_the_runtime_the_lock_file_installs():
    package = json.loads((REPO / "package.json").read_text())
    lock = json.loads((REPO / "package-lock.json").read_text())
    pinned = package["dependencies"]["onnxruntime-web"]
    assert pinned[0].isdigit(), "an exact version: the page and its tests run the runtime they were tested with"
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == pinned
    assert "node_modules/" in (REPO / ".gitignore").read_text().splitlines()


# ------------------------------------------------------------------------------------------------ the routes


@pytest.fixture(scope="module")
def bundled():
    return load_model(str(BUNDLED))


def client(browser: BrowserGenerate):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    return TestClient(FastAPI(routes=browser.routes()))


def test_the_manifest_names_what_the_page_loads_and_the_routes_serve_only_that(bundled, tmp_path):
    fake_runtime(tmp_path)
    http = client(BrowserGenerate(bundled, root=tmp_path, cache_dir=tmp_path / "cache"))
    manifest = http.get("/tinygpt-web/manifest.json").json()
    assert manifest["available"] is True
    assert manifest["config"] == {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 32, "vocab_size": 65}
    assert manifest["runtime"] == {"package": "onnxruntime-web", "version": "1.31.1",
                                   "wasm_paths": "runtime/1.31.1/", "module": "runtime/1.31.1/ort.wasm.min.mjs"}
    assert manifest["model"]["bytes"] == (BUNDLED / "onnx" / "model.onnx").stat().st_size
    assert manifest["window"]["bytes"] == (BUNDLED / "onnx" / "window.onnx").stat().st_size
    assert manifest["limits"] == {"max_new_tokens": 1000, "max_prompt_chars": 2000, "max_seed": 2**32 - 1}

    base = "/tinygpt-web/"
    model = http.get(base + manifest["model"]["url"])
    assert model.content == (BUNDLED / "onnx" / "model.onnx").read_bytes()
    assert http.get(base + manifest["window"]["url"]).content == (BUNDLED / "onnx" / "window.onnx").read_bytes()
    assert "immutable" in model.headers["cache-control"]  # its URL names the weights' sha256
    assert http.get(base + manifest["tokenizer"]).json()["model"]["vocab"]["\n"] == 0
    wasm = http.get(base + manifest["runtime"]["wasm_paths"] + "ort-wasm-simd-threaded.wasm")
    assert wasm.headers["content-type"] == "application/wasm"  # what WebAssembly.instantiateStreaming requires
    assert wasm.headers["content-encoding"] == "gzip"  # compressed once, into the cache folder
    assert wasm.content == (tmp_path / RUNTIME_DIR / "dist" / "ort-wasm-simd-threaded.wasm").read_bytes()
    assert (tmp_path / "web" / "1.31.1" / "ort-wasm-simd-threaded.wasm.gz").is_file()
    plain = http.get(base + manifest["runtime"]["wasm_paths"] + "ort-wasm-simd-threaded.wasm",
                     headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == wasm.content
    module = http.get(base + manifest["runtime"]["module"])
    assert module.headers["content-type"].startswith("text/javascript")  # a module script must be JavaScript
    page = http.get(base + "page/generate.js")
    assert page.text == (REPO / "tinygpt" / "web" / "generate.js").read_text() and page.headers["cache-control"] == "no-cache"
    for refused in ("page/browser_generate.py", "page/..%2Fbrowser_generate.py", "runtime/1.31.1/ort.all.min.mjs",
                    "runtime/0.0.1/ort.wasm.min.mjs", "runtime/1.31.1/..%2Fpackage.json", "model/0123/model.onnx",
                    f"model/{manifest['model']['url'].split('/')[1]}/config.json"):
        assert http.get(base + refused).status_code == 404, refused


def test_without_the_runtime_the_manifest_says_why_and_nothing_is_exported(bundled, tmp_path):
    browser = BrowserGenerate(bundled, root=tmp_path, cache_dir=tmp_path / "cache")
    manifest = client(browser).get("/tinygpt-web/manifest.json").json()
    assert manifest["available"] is False and "run `npm ci` in the folder of app.py" in manifest["reason"]
    assert browser._export is None  # no export made for a page that cannot use it


# -------------------------------------------------------------------------------- sampling.js against transformers

NODE = shutil.which("node")
RUN_SAMPLING = """
import { argmax, probabilities, seededRandom, chooser } from %s;
const cases = JSON.parse(process.argv[1]);
const out = cases.map(({ logits, temperature, topK, topP }) => Array.from(probabilities(logits, temperature, topK, topP)));
const draws = (seed) => { const r = seededRandom(seed); return Array.from({ length: 5 }, r); };
const sample = (seed) => { const c = chooser({ temperature: 1, topK: 0, topP: 1, seed }); return Array.from({ length: 50 }, () => c([0, 0, 0, 0, 0, 0, 0, 0])); };
console.log(JSON.stringify({ out, ties: argmax([1, 3, 3, 2]), greedy: chooser({ temperature: 0, seed: 1 })([0.5, 2, 1]),
  seed7: draws(7), seed7again: draws(7), seed8: draws(8), big: draws(4294967295), sample7: sample(7), sample7again: sample(7) }));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed (the browser test runs sampling.js in Chromium)")
def test_sampling_js_shapes_the_distribution_as_the_server_does():
    """Temperature, then top-k (ties with the k-th kept), then top-p (the likeliest always kept): the probabilities
    the server's SeededSampler samples from (transformers' warpers), to float precision; greedy takes the lowest id
    on a tie, as torch.argmax; the seeded generator repeats itself for a seed and differs between seeds."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    generator = torch.Generator().manual_seed(0)
    cases = []
    for temperature, top_k, top_p in [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.8), (0.8, 10, 0.9), (2.0, 3, 0.5),
                                      (0.5, 65, 0.99), (1.0, 1, 1.0), (1.0, 0, 0.01)]:
        logits = (torch.randn(65, generator=generator) * 3).tolist()
        logits[7] = logits[8]  # a tie, which top-k keeps together
        cases.append({"logits": logits, "temperature": temperature, "topK": top_k, "topP": top_p})
    script = RUN_SAMPLING % json.dumps(SAMPLING_JS.as_uri())
    run = subprocess.run([NODE, "--input-type=module", "-e", script, json.dumps(cases)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    for case, got in zip(cases, result["out"]):
        scores = torch.tensor([case["logits"]], dtype=torch.float64)
        scores = TemperatureLogitsWarper(case["temperature"])(None, scores)
        if case["topK"] > 0:
            scores = TopKLogitsWarper(case["topK"])(None, scores)
        if case["topP"] < 1:
            scores = TopPLogitsWarper(case["topP"])(None, scores)
        expected = torch.softmax(scores, dim=-1)[0]
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), expected, atol=1e-9, rtol=1e-7)
        assert (torch.tensor(got) > 0).sum() == (expected > 0).sum(), case  # the same characters kept
    assert result["ties"] == 1 and result["greedy"] == 1
    assert result["seed7"] == result["seed7again"] != result["seed8"]
    assert all(0 <= u < 1 for u in result["seed7"] + result["big"])
    assert result["sample7"] == result["sample7again"] and len(set(result["sample7"])) > 4  # uniform over 8
