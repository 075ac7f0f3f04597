#!/usr/bin/env bash
# transformers' own generic model tests (ModelTesterMixin, GenerationTesterMixin, TrainingTesterMixin,
# ConfigTester) against tinygpt, at block_size 64 and 8 (8: every generation test crosses the window), then the
# seed-semantics decoding probe. Run fetch.sh once first. Not part of the project's suite (`python -m pytest`).
#
#   bash tools/transformers-tests/run.sh           # the model in this checkout (the installed editable tinygpt)
#   bash tools/transformers-tests/run.sh --fast    # without the @slow tests (torch.export, compile): ~30 s
#   bash tools/transformers-tests/run.sh -- -k generate   # extra pytest arguments
#
# Prints, per block size, pytest's summary line and one line per failed test, then the probe's non-PASS lines.
# Logs: tools/transformers-tests/logs/. The failures that are by design are listed in README.md.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$HERE"
. "$ROOT/.venv/bin/activate"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE=1
export RUN_SLOW=1
PYTEST_EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fast) export RUN_SLOW=0;;
    --) shift; PYTEST_EXTRA=("$@"); break;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
  shift
done
mkdir -p logs
for bs in 64 8; do
  log="logs/block$bs"
  TINYGPT_BLOCK_SIZE=$bs timeout 900 python -m pytest -q --junitxml="$log.xml" "${PYTEST_EXTRA[@]}" > "$log.log" 2>&1
  echo "== block_size=$bs: $(tail -n 1 "$log.log")"
  if [ -s "$log.xml" ]; then
    echo "   $(python summarize.py "$log.xml" --counts)"
    python summarize.py "$log.xml" FAILED ERROR | cut -c1-220
  fi
done
echo "== decoding vs the seed's crop-and-rerun loop (probe_decoding.py; non-PASS lines only)"
timeout 300 python probe_decoding.py 2> logs/probe.err | tee logs/probe.log | grep -v '^PASS' || echo "all PASS"
