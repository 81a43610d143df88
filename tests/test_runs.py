"""Training runs: evaluation schedule, the on-disk cache keyed by config and source, figures."""

import dataclasses
import json

import pytest

import grpo_core.training.runs as runs_mod
from grpo_core.training.runs import CURVES, RunResult, run, sweep
from grpo_core.viz.curves import curves_figure, success_figure, train_live
from grpo_core.training.cache import source_digest
from grpo_core.training.trainer import GRPOConfig


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_CORE_CACHE", str(tmp_path))


def tiny(**kw):
    base = dict(task="sort", task_size=3, d_model=32, n_layers=1, n_heads=2, sft_steps=30, sft_batch=64,
                prompts_per_step=4, G=4, steps=5, eval_size=32, device="cpu")
    base.update(kw)
    return GRPOConfig(**base)


def test_run_evaluates_at_zero_every_k_and_at_the_end():
    res = run(tiny(), eval_every=2)
    assert [e["step"] for e in res.evals] == [0, 2, 4, 5]
    assert [e["samples"] for e in res.evals] == [0, 32, 64, 80]
    walls = [e["wall_s"] for e in res.evals]
    assert walls == sorted(walls) and walls[-1] == pytest.approx(res.wall_s)
    assert len(res.history) == 5 and res.algo == "grpo" and not res.cached
    assert res.before == res.evals[0]["heldout"] and res.after == res.evals[-1]["heldout"]
    assert res.params == res.trainable_params and res.state["total"] > 0


def test_cache_returns_the_same_run_and_misses_on_any_change(monkeypatch):
    first = run(tiny(), cache=True)
    second = run(tiny(), cache=True)
    def as_json(r):
        return json.dumps({k: v for k, v in dataclasses.asdict(r).items() if k != "cached"})  # NaN-safe

    assert second.cached and as_json(second) == as_json(first)
    assert not run(tiny(seed=1), cache=True).cached
    # a change to grpo_core's source code changes the key
    monkeypatch.setattr(runs_mod, "source_digest", lambda: "something else")
    assert not run(tiny(), cache=True).cached


def test_source_digest_is_stable():
    assert source_digest() == source_digest() and len(source_digest()) == 16


def test_first_reaching():
    res = RunResult(config={"algo": "grpo"}, history=[], wall_s=1.0, state={}, params=1, trainable_params=1,
                    rollout_tokens=0, update_tokens=0,
                    evals=[dict(step=0, samples=0, wall_s=0.0, heldout=0.2), dict(step=10, samples=5, wall_s=1.0, heldout=0.95)])
    assert res.first_reaching(0.9)["step"] == 10 and res.first_reaching(0.99) is None


def test_sweep_sets_the_field_and_rejects_unknown_names():
    out = sweep(tiny(steps=1), "G", [2, 4], cache=False)
    assert [r.config["G"] for r in out.values()] == [2, 4]
    with pytest.raises(ValueError, match="`name`='gamma_ray'"):
        sweep(tiny(), "gamma_ray", [1])


def test_figures():
    res = run(tiny(algo="ppo", steps=2))
    fig = curves_figure({"a": res, "b": res}, metrics=("reward_mean", "entropy", "kl"))
    assert len(fig.data) == 2 * 3 and [t.showlegend for t in fig.data[:3]] == [True, False, False]
    with pytest.raises(ValueError, match="`metrics`"):
        curves_figure(res, metrics=("loss_of_faith",))
    sf = success_figure({"ppo": res}, x="wall_s")
    assert list(sf.data[0].y) == [e["heldout"] for e in res.evals]
    with pytest.raises(ValueError, match="`x`='tokens'"):
        success_figure(res, x="tokens")
    assert set(CURVES) >= {"reward_mean", "kl", "entropy", "zero_std_frac", "clip_frac"}


def test_train_live_outside_a_kernel_just_runs():
    res = train_live(tiny(steps=2))
    assert len(res.history) == 2


def test_source_digest_covers_training_code_but_not_presentation(tmp_path, monkeypatch):
    import grpo_core.training.cache as cache

    fake = tmp_path / "pkg"
    for name in ("objective.py", "training/trainer.py", "training/cache.py", "analysis/toy.py",
                 "viz/plots.py", "viz/explorers/x.py"):
        (fake / name).parent.mkdir(parents=True, exist_ok=True)
        (fake / name).write_text("# v1\n")
    monkeypatch.setattr(cache, "__file__", str(fake / "training" / "cache.py"))
    base = cache.source_digest()
    (fake / "viz" / "plots.py").write_text("# v2\n")
    (fake / "viz" / "explorers" / "x.py").write_text("# v2\n")
    assert cache.source_digest() == base  # the viz layer never retrains
    for name in ("training/trainer.py", "objective.py", "analysis/toy.py"):
        (fake / name).write_text("# v3\n")
        changed = cache.source_digest()
        assert changed != base, name
        base = changed


