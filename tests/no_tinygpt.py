"""Run Python code in a fresh interpreter where `import tinygpt` fails, as on a machine that never installed it.

tinygpt is installed (editable) in the test environment, so a plain subprocess would still find it. The
bootstrap puts a finder first on sys.meta_path that refuses `tinygpt` and its submodules, and the code runs
from an empty temporary directory so the repository is not on sys.path either.
"""

import json
import os
import subprocess
import sys
import textwrap

BOOTSTRAP = """
import sys, importlib.abc

class _NoTinyGPT(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tinygpt" or name.startswith("tinygpt."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden for this test)", name=name)
        return None

sys.meta_path.insert(0, _NoTinyGPT())
"""

EPILOGUE = """
assert not any(m == "tinygpt" or m.startswith("tinygpt.") for m in sys.modules), "tinygpt was imported"
"""


def run_without_tinygpt(code: str, cwd, env: dict | None = None, timeout: float = 300) -> dict:
    """Run `code`; it must print one JSON object on its last stdout line, which is returned."""
    script = BOOTSTRAP + textwrap.dedent(code) + EPILOGUE
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])
