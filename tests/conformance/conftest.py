"""The conformance suite: grpo_core's presets against TRL 1.16.0's and verl 0.9.1's own code.

Run by ``make conformance`` in ``.venv-conformance`` (``make conformance-venv``); ``pytest tests``
does not collect this folder (``tests/conftest.py``). Here a skipped test is a failure: a
comparison that did not run proves nothing. The pinned versions are checked, not assumed. At the
end the table of max differences per preset is printed and written to
``$CONFORMANCE_REPORT`` (default ``_build/conformance.md``).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled",
                  TOKENIZERS_PARALLELISM="false", RAY_DISABLE_IMPORT_WARNING="1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402
import torch  # noqa: E402

PINNED = {"trl": "1.16.0", "verl": "0.9.1", "transformers": "5.24.0", "torch": "2.13.0"}

warnings.filterwarnings("ignore")
torch.set_num_threads(1)

import transformers  # noqa: E402,F401  (an ImportError here fails the run: no skip)
import trl  # noqa: E402
import verl  # noqa: E402
from verl.trainer.ppo import core_algos, rollout_corr_helper  # noqa: E402,F401

from conformance_harness import RECORDER, TrlHarness  # noqa: E402


def _version(mod) -> str:
    return mod.__version__.split("+")[0]


def pytest_configure(config):
    for kind in ("FutureWarning", "DeprecationWarning", "UserWarning"):
        config.addinivalue_line("filterwarnings", f"ignore::{kind}")
    found = {name: _version(sys.modules[name]) for name in PINNED}
    wrong = {k: v for k, v in found.items() if v != PINNED[k]}
    if wrong:
        raise pytest.UsageError(f"the conformance suite needs {PINNED}; found {found}. Run `make conformance-venv`.")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = f"{item.nodeid} was skipped, which the conformance suite counts as a failure: {rep.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped:  # e.g. a module-level pytest.importorskip: the whole file would prove nothing
        rep.outcome = "failed"
        rep.longrepr = f"{collector.nodeid} was skipped at collection, which the conformance suite counts as a failure"


@pytest.fixture(scope="session")
def trl_harness():
    return TrlHarness()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RECORDER.rows:
        return
    table = RECORDER.markdown()
    head = (f"grpo_core vs trl {_version(trl)} and verl {_version(verl)} (torch {_version(torch)}, float64; "
            f"loss and gradient w.r.t. log pi_theta at real tokens; TRL's metrics are float32)")
    terminalreporter.write_sep("=", "conformance: max abs differences")
    terminalreporter.write_line(head)
    terminalreporter.write_line(table)
    out = Path(os.environ.get("CONFORMANCE_REPORT", Path(config.rootpath) / "_build" / "conformance.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{head}\n\n{table}\n")
    terminalreporter.write_line(f"(written to {out})")
