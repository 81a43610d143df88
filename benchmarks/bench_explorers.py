"""Benchmark: how fast every registered explorer redraws (the figure function of its live widgets).

For each explorer, times ``Explorer.build`` at its default and at both ends of every control range
(every option of a choice), several times each, and prints the median and the worst milliseconds.
Also times the precomputation of its static figure (build time only, not a reader's wait).

Run: python benchmarks/bench_explorers.py [--repeats 5]
Target: median under 50 ms and worst under 200 ms per explorer on 2 cores. Explorers that redraw
only when a slider is released (``continuous_update=False``: their figure trains a toy policy)
are held to worst under 1000 ms instead, and marked "on release".
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from grpo_core.viz.explorers import all_explorers

MEDIAN_TARGET_MS = 50.0
WORST_TARGET_MS = 200.0
ON_RELEASE_WORST_MS = 1000.0


def settings(explorer):
    yield {}
    for control in explorer.controls:
        for value in control.ends():
            yield {control.name: value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'explorer':<22} {'settings':>8} {'median ms':>10} {'worst ms':>9} {'static s':>9}  verdict")
    ok = True
    for name, explorer in sorted(all_explorers().items()):
        explorer.build()  # warm-up: imports, first allocation
        times = []
        for values in settings(explorer):
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                explorer.build(**values)
                times.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        explorer.static_figure()
        static_s = time.perf_counter() - t0
        median, worst = statistics.median(times), max(times)
        if explorer.continuous_update:
            good, kind = median < MEDIAN_TARGET_MS and worst < WORST_TARGET_MS, "live"
        else:
            good, kind = worst < ON_RELEASE_WORST_MS, "on release"
        ok &= good
        n = len(times) // args.repeats
        verdict = "ok" if good else "TOO SLOW"
        print(f"{name:<22} {n:>8} {median:>10.1f} {worst:>9.1f} {static_s:>9.1f}  {verdict} ({kind})")
    print(
        f"targets: live median < {MEDIAN_TARGET_MS:.0f} ms and worst < {WORST_TARGET_MS:.0f} ms; "
        f"on release worst < {ON_RELEASE_WORST_MS:.0f} ms: {'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
