"""Shared fixtures of the unit tests."""

import os

import pytest

# tests/conformance compares grpo_core with TRL and verl; it runs in its own environment
# (`make conformance`, .venv-conformance), never as part of `pytest tests`.
collect_ignore = ["conformance"]


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory):
    """Base models and runs are cached per test module in a temporary folder (never the user's cache)."""
    old = os.environ.get("GRPO_CORE_CACHE")
    os.environ["GRPO_CORE_CACHE"] = str(tmp_path_factory.mktemp("grpo_cache"))
    yield
    if old is None:
        del os.environ["GRPO_CORE_CACHE"]
    else:
        os.environ["GRPO_CORE_CACHE"] = old
