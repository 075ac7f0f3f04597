#!/usr/bin/env bash
# Put the generic model tests of the INSTALLED transformers release into ./upstream, unmodified:
#   - from that release's PyPI source distribution: tests/*.py (ModelTesterMixin, ConfigTester,
#     TrainingTesterMixin, testing helpers). Checked for 5.25.0: the sdist has tests/ but not tests/__init__.py,
#     tests/generation, tests/exporters or tests/utils, which test_modeling_common.py imports;
#   - those from a clone of the transformers repository (github.com/huggingface/transformers), checked out at the
#     release's tag (v$version): tests/generation (GenerationTesterMixin), tests/exporters, tests/utils,
#     utils/test_module. Pass the clone's path as $1; a clone at another commit is refused unless FORCE=1.
# upstream/VERSION records the release; run.sh refuses tests fetched for another one.
#
#   bash fetch.sh PATH_TO_TRANSFORMERS_CLONE
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
if [ -f "$ROOT/.venv/bin/activate" ]; then . "$ROOT/.venv/bin/activate"; fi
version="$(python -c 'import transformers; print(transformers.__version__)')"
if [ $# -lt 1 ]; then
  echo "usage: bash fetch.sh PATH_TO_TRANSFORMERS_CLONE (at tag v$version): tests/generation is not in the sdist" >&2
  exit 2
fi
clone="$1"
if [ "${FORCE:-0}" != 1 ]; then
  at="$(git -C "$clone" describe --tags --exact-match 2>/dev/null || echo "not a tagged commit")"
  if [ "$at" != "v$version" ]; then
    echo "the clone is at $at, not v$version: git -C $clone checkout v$version (or FORCE=1 to use it anyway)" >&2
    exit 2
  fi
fi
rm -rf "$HERE/upstream" && mkdir -p "$HERE/upstream"
tmp="$(mktemp -d)"
pip download -q --no-deps --no-binary :all: "transformers==$version" -d "$tmp"
tar -xzf "$tmp"/transformers-*.tar.gz -C "$tmp"
cp -r "$tmp"/transformers-*/tests "$HERE/upstream/tests"
# tests/__init__.py (empty) is not in the sdist either: without it test_configuration_common.py's
# direct_transformers_import(tests/) fails
for part in tests/__init__.py tests/generation tests/exporters tests/utils utils/test_module; do
  mkdir -p "$HERE/upstream/$(dirname "$part")" && rm -rf "$HERE/upstream/$part" && cp -r "$clone/$part" "$HERE/upstream/$part"
done
rm -rf "$tmp"
pip install -q parameterized pytest-timeout  # what transformers' tests import or this harness's pytest.ini uses
echo "$version" > "$HERE/upstream/VERSION"
echo "transformers $version tests in $HERE/upstream"
