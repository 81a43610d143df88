"""Count the outcomes of the hostile-case table of tests/test_hardening.py against a checkout.

    python tools/count_hostile.py /path/to/checkout [--list]

Imports grpo_core from the given checkout (put first on sys.path) and the case table from this
tree's tests/test_hardening.py, runs every case and prints how many were right, silently wrong,
failed with an exception naming no (or the wrong) argument, or refused a valid input; --list adds
every case that was not right.
"""

import collections
import importlib.util
import pathlib
import sys
import warnings


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(root))
    import grpo_core  # noqa: F401 - the checkout's

    assert pathlib.Path(grpo_core.__file__).resolve().is_relative_to(root), grpo_core.__file__
    here = pathlib.Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("hostile_cases", here / "tests" / "test_hardening.py")
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    counts = collections.Counter()
    bad = []
    warnings.simplefilter("ignore")
    for c in cases.CASES:
        kind, detail = cases.outcome(c, grpo_core)
        counts[kind] += 1
        if kind != "right":
            bad.append((kind, c.id, detail))
    print(f"grpo_core from {root}: {len(cases.CASES)} cases")
    print("| outcome | cases |\n|---|---|")
    for kind in ("right", "silently wrong", "no argument named", "valid input refused"):
        print(f"| {kind} | {counts[kind]} |")
    if "--list" in sys.argv:
        for kind, cid, detail in sorted(bad):
            print(f"{kind:20s} {cid}: {detail}")


if __name__ == "__main__":
    main()
