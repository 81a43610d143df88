"""A skipped comparison proves nothing: under this folder's conftest a skip, at run time or at
collection (``pytest.importorskip`` of a missing package), fails the run."""

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_a_skip_fails_the_run(tmp_path):
    for name in ("conftest.py", "conformance_harness.py"):
        shutil.copy(HERE / name, tmp_path / name)
    (tmp_path / "test_runtime_skip.py").write_text("import pytest\n\ndef test_x():\n    pytest.skip('no package')\n")
    (tmp_path / "test_collection_skip.py").write_text("import pytest\npytest.importorskip('no_such_package_xyz')\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                          "--continue-on-collection-errors", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode != 0, out.stdout
    assert "test_runtime_skip.py::test_x was skipped, which the conformance suite counts as a failure" in out.stdout
    assert "test_collection_skip.py was skipped at collection" in out.stdout
    assert "1 failed, 1 error" in out.stdout.splitlines()[-1] and "skipped" not in out.stdout.splitlines()[-1]
