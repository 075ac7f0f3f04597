"""benchmarks/bench.py runs end to end and its correctness checks hold; timings are never asserted here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(600)  # the first test pays for the module's bench.py run (up to 300 s itself)
BENCH = REPO / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One `bench.py --smoke` (the --quick code paths with tiny counts), shared by the checks below."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--threads", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


@pytest.mark.slow
def test_prints_every_table_with_ratios(smoke_run):
    stdout, _ = smoke_run
    assert stdout.startswith("tinygpt benchmark (smoke")
    assert "machine: " in stdout and "torch " in stdout and "transformers " in stdout
    for title in ("1. Train step", "2. Generation", "3. Sliding window", "4. python train.py", "5. Peak RSS"):
        assert title in stdout
    for row in ("seed GPT + AdamW()", "GPT2LMHeadModel + AdamW()", "tinygpt, train.py step", "tinygpt, --preset cpu step", "seed loop, sampled",
                "tinygpt cache, greedy", "tinygpt no cache, sampled", "GPT2LMHeadModel cache, sampled"):
        assert row in stdout
    assert "vs seed" in stdout and "vs GPT2" in stdout and "1.00x" in stdout


@pytest.mark.slow
def test_greedy_texts_equal_the_seed_loop(smoke_run):
    """The correctness half of the benchmark: tinygpt (cache and no cache) writes exactly the seed's greedy text,
    from a 1-character prompt and past block_size, at both sizes (bench.py raises before printing otherwise)."""
    stdout, _ = smoke_run
    same = [line for line in stdout.splitlines() if "same text (seed loop = tinygpt cache = tinygpt no cache" in line]
    assert len(same) == 4, stdout


@pytest.mark.slow
def test_json_holds_the_raw_rounds(smoke_run):
    _, results = smoke_run
    assert results["plan"] == "smoke" and results["machine"]["threads"] == 1
    train, generation, sliding = results["tables"]
    assert [len(g["rows"]) for g in train["groups"]] == [4, 4, 4]
    assert [len(g["rows"]) for g in generation["groups"]] == [8, 8]
    assert [len(g["rows"]) for g in sliding["groups"]] == [3, 3]
    for table in results["tables"]:
        for group in table["groups"]:
            for row in group["rows"]:
                assert row["seconds"] and all(s > 0 for s in row["seconds"])
                assert set(row["ratios"]) == {"seed", "GPT2"}
    assert all(r["ratios"]["GPT2"] is None for g in sliding["groups"] for r in g["rows"])
