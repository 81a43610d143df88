#!/usr/bin/env python
"""Build the book exactly as ``jupyter-book build . -W -n --keep-going`` does, but read (and so
execute) the chapters in parallel processes, one per core (at most ``--jobs``, default 2).

Jupyter Book 1's command line has no option for Sphinx's parallel reading, although its own
``jupyter_book.sphinx.build_sphinx`` takes ``jobs``; this script passes it. Every extension the
book uses declares itself safe for parallel reading (Sphinx would warn, and ``-W`` fail, if one did
not). The chapters' kernels each use one thread (``OMP_NUM_THREADS=1``), so two chapters that
train do not fight over the cores.

Usage: python tools/build_book.py [--jobs N] [other jupyter-book build options]
"""

from __future__ import annotations

import functools
import os
import sys


def main(argv: list[str]) -> None:
    jobs = 2
    if argv[:1] == ["--jobs"]:
        if len(argv) < 2 or not argv[1].isdigit() or int(argv[1]) < 1:
            sys.exit("build_book.py: --jobs takes a positive integer, e.g. --jobs 2")
        jobs, argv = int(argv[1]), argv[2:]
    jobs = max(1, min(jobs, os.cpu_count() or 1))
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import jupyter_book.sphinx as jb_sphinx
    from jupyter_book.cli.main import main as jupyter_book

    # jupyter-book's build command imports build_sphinx from this module when it runs
    jb_sphinx.build_sphinx = functools.partial(jb_sphinx.build_sphinx, jobs=jobs)
    jupyter_book(["build", ".", "-W", "-n", "--keep-going", *argv], prog_name="jupyter-book")


if __name__ == "__main__":
    main(sys.argv[1:])
