#!/usr/bin/env bash
# Put transformers' own test mixins into ./upstream, unmodified:
#   - from the PyPI source distribution of the installed transformers version: tests/ (ModelTesterMixin,
#     ConfigTester, TrainingTesterMixin, testing helpers);
#   - from a local clone of the transformers repository (not in the sdist): tests/generation (GenerationTesterMixin),
#     tests/exporters, tests/utils and utils/test_module. Pass its path as $1 (ideally checked out at the tag of the
#     installed version); without it the generation tests cannot run and test_tinygpt_generic.py will not import.
#
#   bash fetch.sh [PATH_TO_TRANSFORMERS_CLONE]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
. "$ROOT/.venv/bin/activate"
version="$(python -c 'import transformers; print(transformers.__version__)')"
rm -rf "$HERE/upstream" && mkdir -p "$HERE/upstream"
tmp="$(mktemp -d)"
pip download -q --no-deps --no-binary :all: "transformers==$version" -d "$tmp"
tar -xzf "$tmp"/transformers-*.tar.gz -C "$tmp"
cp -r "$tmp"/transformers-*/tests "$HERE/upstream/tests"
if [ $# -ge 1 ]; then
  for part in tests/generation tests/exporters tests/utils utils/test_module; do
    mkdir -p "$HERE/upstream/$(dirname "$part")" && rm -rf "$HERE/upstream/$part" && cp -r "$1/$part" "$HERE/upstream/$part"
  done
else
  echo "note: no transformers clone given; tests/generation (GenerationTesterMixin) is missing" >&2
fi
rm -rf "$tmp"
pip install -q parameterized pytest-timeout  # what transformers' tests import or this harness's pytest.ini uses
echo "transformers $version tests in $HERE/upstream"
