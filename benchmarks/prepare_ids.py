"""Preparing a text bigger than memory: time and peak memory of the memory-mapped id file (`tinygpt.data.prepare_ids`).

    python benchmarks/prepare_ids.py --gb 2            # makes a ~2 GB text in /tmp, measures, deletes it
    python benchmarks/prepare_ids.py --gb 0.1 --no-dataset

The text is tiny Shakespeare repeated to the size asked. Two ways in, each in its own process (its peak
resident memory is `getrusage(RUSAGE_SELF).ru_maxrss`), one after the other:

- `--data FILE`, for a file of `MEMMAP_MIN_BYTES` or more: read in 4 MB pieces, twice (characters, then ids);
- `--dataset FILE.txt`, through `datasets`' streaming `text` builder (one row per line, 10,000 rows per piece).

Then the prepared ids are opened as a resumed run does (reused, no pass over the text) and one training batch is
drawn from them. Needs free disk of about twice the text (the text and its ids, one byte per character).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
kind, text, folder = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
import torch, numpy  # imported before the clock starts: their memory is the baseline, not the preparation's
if kind == "dataset":
    import datasets
baseline = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
cpu_before = time.process_time()
start = time.perf_counter()
if kind == "data":
    from tinygpt.corpus import iter_corpus
    from tinygpt.data import file_source, prepare_ids
    corpus = prepare_ids(lambda: iter_corpus(text), folder, file_source(text), text)
else:
    from tinygpt.datasets_source import dataset_corpus
    corpus = dataset_corpus(str(text), None, "train", "text", folder)
seconds = time.perf_counter() - start
cpu_after = time.process_time()
again = time.perf_counter()
if kind == "data":
    corpus = prepare_ids(lambda: iter_corpus(text), folder, file_source(text), text)  # reused, as on --resume
else:
    corpus = dataset_corpus(str(text), None, "train", "text", folder)
reuse = time.perf_counter() - again
import torch
from tinygpt.data import get_batch
train, val = corpus.split()
x, y = get_batch(train, 32, 16, torch.Generator().manual_seed(0), torch.device("cpu"))
print(json.dumps({{"characters": len(corpus), "vocab_size": len(corpus.chars), "dtype": corpus.ids.dtype.name,
                  "seconds": round(seconds, 1), "reuse_seconds": round(reuse, 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "cpu_seconds": round(cpu_after - cpu_before, 1), "baseline_rss_mb": baseline,
                  "ids_mb": round((folder / "ids.bin").stat().st_size / 2**20)}}))
"""


def make_text(path: Path, gigabytes: float) -> int:
    piece = (REPO / "data" / "tinyshakespeare.txt").read_bytes()
    target = int(gigabytes * 2**30)
    with path.open("wb") as f:
        written = 0
        while written < target:
            f.write(piece)
            written += len(piece)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gb", type=float, default=2.0, help="size of the text in GiB (default: 2)")
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the text and the ids (default: /tmp)")
    p.add_argument("--no-dataset", action="store_true", help="skip the `datasets` text builder")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tinygpt-prepare-", dir=args.dir))
    try:
        text = work / "big.txt"
        size = make_text(text, args.gb)
        print(f"text: tiny Shakespeare repeated to {size / 2**30:.2f} GiB ({size:,} bytes) in {work}", flush=True)
        print("| way in | characters | prepare, wall (s) | prepare, CPU (s) | MB/s (CPU) | peak RSS (MB) | of which "
              "imports (MB) | ids file (MB) | reuse (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for kind in ("data",) + (() if args.no_dataset else ("dataset",)):
            folder = work / f"prepared-{kind}"
            done = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO)), kind, str(text), str(folder)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            r = json.loads(done.stdout.strip().splitlines()[-1])
            way = "`--data FILE` (4 MB pieces)" if kind == "data" else "`--dataset FILE.txt` (datasets, streaming)"
            print(f"| {way} | {r['characters']:,} | {r['seconds']} | {r['cpu_seconds']} | "
                  f"{size / 2**20 / r['cpu_seconds']:.0f} | {r['peak_rss_mb']} | {r['baseline_rss_mb']} | "
                  f"{r['ids_mb']} ({r['dtype']}) | {r['reuse_seconds']} |", flush=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
