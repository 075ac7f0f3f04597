"""The files behind Generate in the visitor's browser, and where they are: the page's scripts (`tinygpt/web/`) and
onnxruntime-web's WebAssembly build, which `npm ci` installs from the npm registry beside app.py (package.json,
package-lock.json). `tinygpt.browser_generate` serves them; `tinygpt space` uploads them to a Space at the same
paths. Standard library only: `tinygpt space` needs the list without importing gradio.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent / "web"
PAGE_FILES = ("generate.js", "worker.js", "decoder.js", "sampling.js")
RUNTIME_PACKAGE = "onnxruntime-web"
RUNTIME_DIR = Path("node_modules") / RUNTIME_PACKAGE  # beside app.py: in a checkout after `npm ci`, and in a Space
# The WebAssembly build only (no WebGPU or WebGL): its ES module, the module that starts the .wasm, and the .wasm.
RUNTIME_FILES = ("dist/ort.wasm.min.mjs", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm")


@dataclass(frozen=True)
class Runtime:
    """onnxruntime-web's files on this machine."""

    directory: Path
    version: str

    def file(self, name: str) -> Path | None:
        """The path of one of RUNTIME_FILES by its bare name (None for any other name)."""
        relative = f"dist/{name}"
        return self.directory / relative if relative in RUNTIME_FILES else None


def find_runtime(root: Path) -> tuple[Runtime | None, str]:
    """(the runtime installed under `root`, the folder of app.py, "") or (None, why not, in words for the page)."""
    directory = Path(root) / RUNTIME_DIR
    try:
        version = json.loads((directory / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, (f"this server has no {RUNTIME_PACKAGE} (the JavaScript runtime): run `npm ci` in the folder "
                      "of app.py, then start it again")
    missing = [name for name in RUNTIME_FILES if not (directory / name).is_file()]
    if missing or not isinstance(version, str) or not re.fullmatch(r"[0-9A-Za-z.+-]+", version):
        return None, f"this server's {RUNTIME_PACKAGE} is incomplete: run `npm ci` in the folder of app.py again"
    return Runtime(directory, version), ""


def space_files(root: Path) -> list[str]:
    """What a Space needs beside app.py and the package's .py files for its visitors' browsers to write (paths
    relative to `root`, the folder of app.py, which are also their paths in the Space): the page's scripts, and
    the runtime's package.json (its version and licence) and WebAssembly build when `npm ci` has been run here."""
    files = [f"tinygpt/web/{name}" for name in PAGE_FILES]
    runtime, _ = find_runtime(root)
    if runtime is not None:
        files += [(RUNTIME_DIR / name).as_posix() for name in ("package.json", *RUNTIME_FILES)]
    return files
