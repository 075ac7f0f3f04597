"""Print one line per test from a pytest junit xml: outcome, test name, first line of the reason.

    python summarize.py LOG.xml --counts                      # passed / failed / skipped per test function
    python summarize.py LOG.xml FAILED ERROR                  # the failed and errored tests
    python summarize.py LOG.xml --unexpected by_design.txt 8  # failures not listed for block_size 8; exit 1 if any
"""
import sys
import xml.etree.ElementTree as ET
from fnmatch import fnmatch


def rows(path):
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name")
        outcome, msg = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
                msg = (el.get("message") or "").strip().splitlines()[0][:200] if el.get("message") else ""
                break
        yield outcome, name, msg


def by_design(path, block_size):
    """The test-name patterns by_design.txt lists for this block size."""
    patterns = []
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].split()
        if len(line) == 2 and (line[0] == "*" or block_size in line[0].split(",")):
            patterns.append(line[1])
    return patterns


if __name__ == "__main__":
    if sys.argv[2:] == ["--counts"]:  # per test function (a test's failing subtests count once)
        from collections import Counter
        c = Counter(outcome for outcome, _, _ in rows(sys.argv[1]))
        print(f"tests: {sum(c.values())}  passed {c['passed']}  failed {c['FAILED'] + c['ERROR']}  skipped {c['skipped']}")
        sys.exit(0)
    if sys.argv[2:3] == ["--unexpected"]:
        patterns = by_design(sys.argv[3], sys.argv[4])
        unexpected = [(o, n, m) for o, n, m in sorted(rows(sys.argv[1]))
                      if o in ("FAILED", "ERROR") and not any(fnmatch(n.split("[")[0], p) for p in patterns)]
        for outcome, name, msg in unexpected:
            print(f"UNEXPECTED {outcome:8} {name:70} {msg}")
        sys.exit(1 if unexpected else 0)
    want = set(sys.argv[2:])
    for outcome, name, msg in sorted(rows(sys.argv[1])):
        if not want or outcome in want:
            print(f"{outcome:8} {name:70} {msg}")
