"""Generate in the visitor's browser: what app.py serves so that the page runs the served model itself, on
onnxruntime-web (WebAssembly), instead of asking the server for every character.

    browser = BrowserGenerate(loaded, root=Path("."))     # the served model (demo.load_model) and app.py's folder
    browser.switch()                                       # in the Generate tab: "Where the text is written"
    demo.launch(..., app_kwargs={"routes": browser.routes()})

The page's side is in `tinygpt/web/` (generate.js on the page, worker.js running the model, decoder.js the decoding
loop, sampling.js the choice of each character); it reads `/tinygpt-web/manifest.json` to know whether the browser
can write and where everything is:

- the runtime: onnxruntime-web's WebAssembly build, from the npm registry through the project's package.json
  (`npm ci` puts it in `node_modules/onnxruntime-web/` beside app.py; `tinygpt space` uploads the same three files
  to the same place in a Space). Never a CDN: without it the server writes, and the page says why.
- the model: the ONNX export of the served model (`tinygpt export onnx`, tinygpt.onnx_export) and the window's own
  graph for the steps past block_size (tinygpt.browser_export): the model's own `onnx/model.onnx` and
  `onnx/window.onnx` when they were exported from these very weights (the sha256 of model.safetensors they record),
  else ones made on the first request into a cache folder (`$XDG_CACHE_HOME/tinygpt/onnx/`, default ~/.cache) by
  `python -m tinygpt.browser_export` in a process of its own, when the `onnx` extra is installed. Without an export
  the server writes; without the window's graph the page runs the window on the export.
- the tokenizer: the model's `tokenizer.json`, whose `model.vocab` is the whole character tokenizer.

Only the served model writes in the browser. A model trained in the Train tab belongs to one session on the server
and keeps writing there (its export would cost seconds of server CPU per training). Greedy text (temperature 0) is
the server's exactly; sampled text comes from the browser's own seeded generator, so a seed gives the same text in
every browser but not the server's.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from transformers.utils import cached_file

from .browser_export import WINDOW_FILE
from .browser_files import PAGE_FILES, RUNTIME_PACKAGE, WEB_DIR, find_runtime
from .common import is_local_path, one_line
from .demo import MAX_NEW_TOKENS, MAX_PROMPT_CHARS, MAX_SEED, Loaded

logger = logging.getLogger(__name__)

PREFIX = "/tinygpt-web"  # every URL this module serves starts with it
MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
               ".onnx": "application/octet-stream", ".json": "application/json"}
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}  # URLs that name a version or a sha256
REVALIDATE = {"Cache-Control": "no-cache"}  # the page's own scripts: checked against their ETag on every load
ONNX_FILE = "onnx/model.onnx"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_SHA256_KEY = b"tinygpt.weights_sha256"  # what `tinygpt export onnx` records in the file's metadata
EXPORTER_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the onnx extra: tracing, the graph, the check
EXPORT_TIMEOUT = 600  # seconds: a tiny model exports in 5 to 30, a busy machine's bigger model takes longer


# ---------------------------------------------------------------------------------------------- the export


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def exported_from(onnx_path: Path, weights_sha256: str) -> bool:
    """Whether an ONNX file records that it was exported from weights with this sha256 (`tinygpt export onnx`
    writes it into the file's metadata). Read as bytes, so the check needs no onnx package: the metadata is a plain
    string in the file, and 64 hex digits do not occur by chance."""
    data = Path(onnx_path).read_bytes()
    return WEIGHTS_SHA256_KEY in data and weights_sha256.encode("ascii") in data


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinygpt" / "onnx"


@dataclass(frozen=True)
class Export:
    """The served model's ONNX graphs, ready to serve."""

    path: Path  # the decoder `tinygpt export onnx` writes: the prompt and the cache's steps
    window: Path | None  # the sliding window's step (tinygpt.browser_export), or None: the decoder runs it too
    weights_sha256: str
    origin: str  # how the page describes where the decoder came from

    @property
    def key(self) -> str:  # in its URL: a new model gets a new URL, so a browser's cached copy is never stale
        return self.weights_sha256[:16]


def _model_file(source: str, name: str) -> Path | None:
    """A file of the served model: in its folder, or downloaded from its Hub repo (None where there is none)."""
    if is_local_path(source):
        path = Path(source).expanduser() / name
        return path if path.is_file() else None
    try:
        found = cached_file(source, name, _raise_exceptions_for_missing_entries=False)
    except Exception:  # offline, no access: as if it were not there
        return None
    return Path(found) if found else None


def find_or_make_export(source: str, cache_dir: Path) -> tuple[Export | None, str]:
    """The served model's current ONNX graphs: the decoder and the window's step, each the model's own
    (`onnx/model.onnx`, `onnx/window.onnx`), else the cache's, else made into the cache when the onnx extra is
    installed. Returns (export, "") or (None, why not, in words for the page); an export without its window step
    still serves (the page then runs the window on the decoder)."""
    weights = _model_file(source, WEIGHTS_FILE)
    if weights is None:
        return None, f"the model has no {WEIGHTS_FILE} to export"
    sha = sha256_of(weights)
    cached = cache_dir / sha[:16]
    own = _model_file(source, ONNX_FILE)
    stale = own is not None and not exported_from(own, sha)  # from other weights: it would write another model's text
    decoder, origin = _current([own, cached / ONNX_FILE], sha), "exported by this server (cached)"
    if decoder is not None and decoder == own:
        origin = f"the model's own {ONNX_FILE}"
    window = _current([_model_file(source, f"onnx/{WINDOW_FILE}"), cached / WINDOW_FILE], sha)
    if decoder is not None and window is not None:
        return Export(decoder, window, sha, origin), ""
    missing = missing_exporter()
    if missing:
        if decoder is not None:
            return Export(decoder, None, sha, origin), ""
        hint = "is from older weights" if stale else "is missing"
        return None, (f"the model's ONNX export {hint} and this server cannot make one ({missing} is not installed): "
                      "run `tinygpt export onnx MODEL`, or install the onnx extra (pip install \"tinygpt[onnx]\") "
                      "where app.py runs")
    seconds, problem = export_in_subprocess(source, cached, decoder=decoder is None)
    if problem:
        logger.warning("tinygpt: exporting %s to ONNX for the browser: %s", source, problem)
    if decoder is None:
        decoder, origin = _current([cached / ONNX_FILE], sha), f"exported by this server in {seconds:.0f} s"
        if decoder is None:
            return None, f"exporting the model to ONNX failed ({problem or 'no export was written'})"
    return Export(decoder, _current([cached / WINDOW_FILE], sha), sha, origin), ""


def _current(paths, sha: str) -> Path | None:
    """The first of these ONNX files that exists and was exported from the weights with this sha256."""
    return next((p for p in paths if p is not None and p.is_file() and exported_from(p, sha)), None)


def missing_exporter() -> str:
    """The first package `tinygpt export onnx` needs that is not installed, or "". Looked up, not imported: the
    export runs in another process, and importing them here would hold the GIL against the streams being served."""
    for name in EXPORTER_PACKAGES:
        if importlib.util.find_spec(name) is None:
            return name
    return ""


def export_in_subprocess(source: str, out_dir: Path, decoder: bool) -> tuple[float, str]:
    """`python -m tinygpt.browser_export SOURCE OUT_DIR [--decoder]` (the window's step, and with `decoder` the
    export of `tinygpt export onnx` too) in a process of its own, at a lower CPU priority: tracing the model is
    seconds of Python that, in the server's process, would hold the GIL against every visitor's stream. Returns
    (seconds, "") or (seconds, its error in one line)."""
    command = [sys.executable, "-m", "tinygpt.browser_export", source, str(out_dir), *(["--decoder"] if decoder else [])]
    if shutil.which("nice"):
        command = ["nice", "-n", "10", *command]
    started = time.perf_counter()
    try:  # from the folder that holds this tinygpt package, so that the same package exports
        run = subprocess.run(command, cwd=WEB_DIR.parent.parent, stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=EXPORT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as err:
        return time.perf_counter() - started, one_line(err)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        return seconds, one_line(lines[-1] if lines else f"exit status {run.returncode}")
    return seconds, ""


# ------------------------------------------------------------------------------------------------- the page


SWITCH_HTML = """\
<div class="tinygpt-where">
  <fieldset>
    <legend>Where the text is written</legend>
    <label><input type="radio" name="tinygpt-where" value="browser" checked> your browser</label>
    <label><input type="radio" name="tinygpt-where" value="server"> the server</label>
  </fieldset>
  <p class="tinygpt-where-status" role="status" aria-live="polite">Looking whether your browser can write…</p>
  <p class="tinygpt-where-note">Greedy text (temperature 0) is the same in your browser and on the server. Sampled
  text draws from the same probabilities with the browser's own random numbers: a seed gives the same text in any
  browser, but not the server's.</p>
</div>
"""

SWITCH_CSS = """
.tinygpt-where fieldset { border: 0; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 4px 16px;
  align-items: center; }
.tinygpt-where legend { font-weight: 600; padding: 0; margin-right: 8px; float: left; }
.tinygpt-where label { display: inline-flex; gap: 4px; align-items: center; cursor: pointer; }
.tinygpt-where input[type=radio] { appearance: auto; margin: 0; width: 16px; height: 16px; }
.tinygpt-where label:has(input:disabled) { opacity: 0.5; cursor: default; }
.tinygpt-where p { margin: 4px 0 0; font-size: 14px; }
.tinygpt-where .tinygpt-where-note { color: var(--body-text-color-subdued); font-size: 13px; }
"""

# Runs once the switch is on the page (gradio's js_on_load, with `element` the switch): generate.js does the rest.
MOUNT_JS = f"""
const root = (window.gradio_config && window.gradio_config.root) || window.location.href;
const base = new URL("{PREFIX.lstrip('/')}/", root.endsWith("/") ? root : root + "/");
import(new URL("page/generate.js", base).href)
  .then((page) => page.mount(element, base.href))
  .catch((err) => {{
    const status = element.querySelector(".tinygpt-where-status");
    if (status) status.textContent = "The server writes the text: the page's script did not load (" + err + ").";
    console.error("tinygpt: generate.js", err);
  }});
"""


class BrowserGenerate:
    """The served model's browser generation: the page's switch, the manifest and the files it names."""

    def __init__(self, loaded: Loaded, root: Path | None = None, cache_dir: Path | None = None, threads: int = 1):
        self.source = loaded.source
        config = loaded.model.config
        self.config = {name: getattr(config, name) for name in ("n_layer", "n_head", "n_embd", "block_size",
                                                                  "vocab_size")}
        self.root = Path(root) if root is not None else WEB_DIR.parent.parent
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.threads = threads  # WASM threads the page asks for (more need a cross-origin isolated page)
        self.runtime, self.runtime_problem = find_runtime(self.root)
        self.tokenizer = _model_file(self.source, "tokenizer.json")
        self._lock = threading.Lock()  # one export at a time
        self._gzip_lock = threading.Lock()
        self._export: tuple[Export | None, str] | None = None  # found or made once, on the first manifest

    def export(self) -> tuple[Export | None, str]:
        """The export the page loads (found or made on first use, then remembered), or (None, why not)."""
        with self._lock:
            if self._export is None:
                self._export = find_or_make_export(self.source, self.cache_dir)
            return self._export

    def manifest(self) -> dict:
        """What the page reads to decide where the text is written, and where to find everything (URLs relative to
        the manifest's own)."""
        unavailable = {"available": False, "config": self.config}
        if self.runtime is None:
            return {**unavailable, "reason": self.runtime_problem}
        if self.tokenizer is None:
            return {**unavailable, "reason": "the model has no tokenizer.json"}
        export, problem = self.export()
        if export is None:
            return {**unavailable, "reason": problem}
        runtime = f"runtime/{self.runtime.version}/"
        return {
            "available": True,
            "config": self.config,
            "runtime": {"package": RUNTIME_PACKAGE, "version": self.runtime.version, "wasm_paths": runtime,
                        "module": runtime + "ort.wasm.min.mjs"},
            "model": {"url": f"model/{export.key}/model.onnx", "bytes": export.path.stat().st_size,
                      "origin": export.origin},
            "window": {"url": f"model/{export.key}/{WINDOW_FILE}", "bytes": export.window.stat().st_size}
            if export.window is not None else None,
            "tokenizer": f"model/{export.key}/tokenizer.json",
            "threads": self.threads,
            "limits": {"max_new_tokens": MAX_NEW_TOKENS, "max_prompt_chars": MAX_PROMPT_CHARS, "max_seed": MAX_SEED},
        }

    def switch(self) -> gr.HTML:
        """The Generate tab's "Where the text is written" switch and its status line (generate.js drives it)."""
        return gr.HTML(SWITCH_HTML, css_template=SWITCH_CSS, js_on_load=MOUNT_JS, elem_id="generate-where",
                       apply_default_css=True)

    # -- the server side: FastAPI routes, passed to gradio's app (launch(app_kwargs={"routes": ...}))

    def routes(self) -> list[APIRoute]:
        return [
            APIRoute(f"{PREFIX}/manifest.json", self._manifest, methods=["GET"], include_in_schema=False),
            APIRoute(f"{PREFIX}/page/{{name}}", self._serve_page_file, methods=["GET"], include_in_schema=False),
            APIRoute(f"{PREFIX}/runtime/{{version}}/{{name}}", self._serve_runtime_file, methods=["GET"],
                     include_in_schema=False),
            APIRoute(f"{PREFIX}/model/{{key}}/{{name}}", self._serve_model_file, methods=["GET"], include_in_schema=False),
        ]

    def _manifest(self):  # a plain def: FastAPI runs it in a worker thread, where a first export may take seconds
        return JSONResponse(self.manifest(), headers=REVALIDATE)

    def _serve_page_file(self, name: str):
        if name not in PAGE_FILES:
            raise HTTPException(404)
        return _file(WEB_DIR / name, REVALIDATE)

    def _serve_runtime_file(self, request: Request, version: str, name: str):
        path = self.runtime.file(name) if self.runtime is not None and version == self.runtime.version else None
        if path is None:
            raise HTTPException(404)
        if "gzip" in request.headers.get("accept-encoding", ""):  # the 15 MB .wasm travels as 4 MB
            compressed = self._gzipped(path)
            if compressed is not None:
                return FileResponse(compressed, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                                    headers={**IMMUTABLE, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return _file(path, {**IMMUTABLE, "Vary": "Accept-Encoding"})

    def _gzipped(self, path: Path) -> Path | None:
        """A gzip copy of a runtime file, made once into the cache folder (None where it cannot be written)."""
        target = self.cache_dir.parent / "web" / self.runtime.version / (path.name + ".gz")
        with self._gzip_lock:
            if not target.is_file():
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(target.name + f".{os.getpid()}.partial")
                    with open(path, "rb") as source, gzip.open(partial, "wb", compresslevel=6) as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                    partial.replace(target)
                except OSError as err:
                    logger.warning("tinygpt: cannot keep a gzip copy of %s: %s", path.name, one_line(err))
                    return None
        return target

    def _serve_model_file(self, key: str, name: str):
        export, _ = self._export or (None, "")  # only what the manifest named
        files = {"model.onnx": export.path, WINDOW_FILE: export.window, "tokenizer.json": self.tokenizer} \
            if export is not None and key == export.key else {}
        if files.get(name) is None:
            raise HTTPException(404)
        return _file(files[name], IMMUTABLE)


def _file(path: Path, headers: dict) -> FileResponse:
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"), headers=headers)
