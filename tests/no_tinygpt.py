"""Run Python code in a fresh interpreter where `import tinygpt` fails, as on a machine that never installed it.

tinygpt is installed (editable) in the test environment, so a plain subprocess would still find it. The
bootstrap puts a finder first on sys.meta_path that refuses `tinygpt` and its submodules, and the code runs
from an empty temporary directory so the repository is not on sys.path either.

A Space made by `tinygpt space` has no tinygpt installed but carries a copy of the package folder beside app.py:
`allow_from=FOLDER` lets `tinygpt` be imported from FOLDER/tinygpt only (never the installed one).
"""

import json
import os
import subprocess
import sys
import textwrap

BOOTSTRAP = """
import os, sys, importlib.abc, importlib.machinery

ALLOWED = {allowed!r}  # a folder whose tinygpt/ copy may be imported (a Space's), or None

def _allowed_origin(origin):
    return ALLOWED is not None and origin is not None and os.path.realpath(origin).startswith(
        os.path.join(os.path.realpath(ALLOWED), "tinygpt") + os.sep)

class _NoTinyGPT(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tinygpt" or name.startswith("tinygpt."):
            if ALLOWED is not None:
                spec = importlib.machinery.PathFinder.find_spec(name, [ALLOWED] if path is None else path)
                if spec is not None and _allowed_origin(spec.origin):
                    return spec
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden for this test)", name=name)
        return None

sys.meta_path.insert(0, _NoTinyGPT())
"""

EPILOGUE = """
_loaded = [m for m in list(sys.modules) if m == "tinygpt" or m.startswith("tinygpt.")]
assert all(_allowed_origin(getattr(sys.modules[m], "__file__", None)) for m in _loaded), "tinygpt was imported"
"""


def run_without_tinygpt(code: str, cwd, env: dict | None = None, timeout: float = 300, allow_from=None) -> dict:
    """Run `code`; it must print one JSON object on its last stdout line, which is returned."""
    allowed = None if allow_from is None else str(allow_from)
    script = BOOTSTRAP.format(allowed=allowed) + textwrap.dedent(code) + EPILOGUE
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])
