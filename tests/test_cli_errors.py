"""The command line never traces back: every bad invocation is one line on stderr and exit code 2."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from grpo_core.training.cli import main
from grpo_core.training.trainer import GRPOConfig

FIELDS = {f.name: f for f in dataclasses.fields(GRPOConfig)}


def bad_values(name: str) -> list[str]:
    """Values that no field of this kind accepts."""
    default = getattr(GRPOConfig(), name)
    if isinstance(default, bool):
        return ["maybe", "2"]
    if isinstance(default, int):
        return ["x", "-1", "1.5"]
    if isinstance(default, float):
        return ["x", "-1", "nan", "inf"]
    if isinstance(default, str):
        return ["nonsense", "7"]
    # optional fields (None by default)
    return {"task_size": ["-1", "x", "1"], "eps_high": ["-1", "nan", "x"], "kl_target": ["-1", "0", "x"],
            "max_new_tokens": ["0", "-3", "x"], "device": ["nonsense", "cuda:7", "gpu"],
            "loss_preset": ["nonsense", "7"], "loss_overrides": ["x", "1"], "base_seed": ["-1", "x", "1.5"]}[name]


CASES = [(name, value) for name in FIELDS for value in bad_values(name)]


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    err = capsys.readouterr().err
    return exit.value.code, err


@pytest.mark.parametrize("name,value", CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_every_bad_set_value_is_one_line_and_exit_2(name, value, capsys):
    code, err = run(["--set", f"{name}={value}", "--quiet"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("python -m grpo_core.train: error:") and "Traceback" not in err
    assert name in lines[0] or f"{name}=" in lines[0]  # the message names what was wrong


def test_every_field_is_covered():
    assert {n for n, _ in CASES} == set(FIELDS)


@pytest.mark.parametrize("argv", [
    ["--device", "cuda"], ["--steps", "x"], ["--steps", "0"], ["--seed", "-3"], ["--task", "divide"],
    ["--set", "d_model=15"], ["--set", "nokey=1"], ["--set", "G"], ["--algo", "dpo"], ["--gpu-config", "--cpu-config"],
    ["--set", "minibatches=3"], ["--set", "task=add", "--set", "task_size=4"],
])
def test_bad_arguments_are_one_line_and_exit_2(argv, capsys):
    code, err = run(argv + ["--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_cuda_without_a_gpu_says_how_to_pick_the_cpu(capsys):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")  # the message is about machines without it
    _, err = run(["--device", "cuda", "--quiet"], capsys)
    assert "no usable CUDA GPU" in err and "'cpu'" in err


def test_the_real_command_line_does_not_trace_back(tmp_path):
    env = {**os.environ, "GRPO_CORE_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    for argv in (["--device", "cuda"], ["--set", "d_model=15"], ["--set", "eps_high=-1"]):
        out = subprocess.run([sys.executable, "-m", "grpo_core.train", *argv], capture_output=True, text=True, env=env,
                             timeout=120)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
