"""Print one line per test from a pytest junit xml: outcome, test name, first line of the reason."""
import sys
import xml.etree.ElementTree as ET

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

if __name__ == "__main__":
    if sys.argv[2:] == ["--counts"]:  # per test function (a test's failing subtests count once)
        from collections import Counter
        c = Counter(outcome for outcome, _, _ in rows(sys.argv[1]))
        print(f"tests: {sum(c.values())}  passed {c['passed']}  failed {c['FAILED'] + c['ERROR']}  skipped {c['skipped']}")
        sys.exit(0)
    want = set(sys.argv[2:])
    for outcome, name, msg in sorted(rows(sys.argv[1])):
        if not want or outcome in want:
            print(f"{outcome:8} {name:70} {msg}")
