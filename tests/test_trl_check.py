"""grpo_core.training.trl_check: TRL 1.16's GRPOTrainer run on a local tiny Llama, what it used for
its loss captured, and the loss recomputed by grpo_core's presets.

The tests would fail if the capture were wrong (wrong tensors, wrong micro-batch, a missing pi_old)
or the recomputation were (a wrong convention, a corrupted capture): each check of agreement is
paired with a deliberate error that must give a large difference. No download: HF offline.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("trl")

from grpo_core.training import trl_check as tc  # noqa: E402

TOL = 1e-6


def within(a, tol=TOL):
    return a["loss_diff"] <= tol * max(1.0, a["loss_scale"]) and a["grad_diff"] <= tol * max(1.0, a["grad_scale"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tc.local_setup("sort", n_digits=3, warmup_steps=60, directory=str(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def runs(setup):
    return {lt: tc.run_trl(setup, lt, max_steps=4) for lt in ("grpo", "dapo")}


def test_local_setup_is_offline_and_has_a_reward_spread(setup, runs):
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    r = runs["dapo"].rewards
    assert 0 < sum(r) < len(r)  # some right, some wrong: advantages are not all 0
    assert set(r) <= {0.0, 1.0}  # the book's exact-match reward
    assert setup.tokenizer.convert_tokens_to_ids(["<pad>", "<eos>", "0"]) == [0, 1, 2]  # the book's token ids


def test_capture_structure(runs):
    run = runs["dapo"]
    caps = run.captures
    assert len(caps) == 4 * 2  # max_steps x gradient_accumulation_steps
    assert [c.step for c in caps] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(c.old is not None and c.ref is not None for c in caps)  # mu = 2 and beta > 0
    # generation every 2 x 2 micro-steps: the second pass reuses the first pass's micro-batches
    for a, b in ((0, 2), (1, 3), (4, 6), (5, 7)):
        assert torch.equal(caps[a].completion_ids, caps[b].completion_ids)
        assert torch.equal(caps[a].old, caps[b].old)
    assert not torch.equal(caps[0].completion_ids, caps[4].completion_ids)  # a new generation
    # first pass: pi_theta is pi_old (a separate forward of the same weights); second: it moved
    for c in caps:
        d = float(((c.logp - c.old) * c.completion_mask).abs().max())
        assert (d < 1e-6) if c.step % 2 == 0 else (d > 1e-3)
    assert all(float(c.grad.abs().max()) > 0 for c in caps)
    assert all(float(c.grad[c.completion_mask == 0].abs().sum()) == 0.0 for c in caps)
    # dapo's num_items_in_batch counts the tokens of the whole generation batch (both micro-batches)
    for a, b in ((0, 1), (4, 5)):
        assert caps[a].num_items_in_batch == int(caps[a].completion_mask.sum() + caps[b].completion_mask.sum())


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo"])
def test_every_loss_type_agrees(setup, loss_type):
    run = tc.run_trl(setup, loss_type, max_steps=2)
    a = tc.agreement(run)
    assert a["micro_batches"] == 4 and within(a), a
    # the same tensors under another loss type's preset do not agree (the check can fail)
    other = "trl-sapo" if loss_type != "sapo" else "trl-grpo"
    assert max(r["grad_diff"] for r in (tc.recompute(run, c, preset=other) for c in run.captures)) > 1e-3


@pytest.mark.parametrize("option", [dict(std="population"), dict(normaliser="micro"), dict(kl="reward"),
                                    dict(kl_bias_correction=False), dict(preset="trl-bnpo"), dict(beta=0.0)],
                         ids=str)
def test_wrong_conventions_cost_much_more_than_rounding(runs, option):
    run = runs["dapo"]
    worst = max(tc.recompute(run, c, **option)["grad_diff"] for c in run.captures)
    scale = max(float(c.grad.abs().max()) for c in run.captures)
    assert worst > 1e-3 * scale


def test_mu_and_accumulation_conventions(runs):
    grpo = runs["grpo"]
    no_div = [tc.recompute(grpo, c, ga=1) for c in grpo.captures]
    assert all(abs(r["loss"] - 2 * r["trl_loss"]) < 1e-6 for r in no_div)  # missing / gradient_accumulation_steps
    second = [c for c in grpo.captures if c.step % 2 == 1]
    first = [c for c in grpo.captures if c.step % 2 == 0]
    assert max(tc.recompute(grpo, c, old="detached")["grad_diff"] for c in second) > 1e-3
    assert max(tc.recompute(grpo, c, old="detached")["grad_diff"] for c in first) < TOL


def test_a_corrupted_capture_is_detected(runs):
    run = runs["dapo"]
    cap = run.captures[2]
    assert tc.recompute(run, cap)["grad_diff"] < TOL
    bad = copy.copy(cap)
    bad.advantages = cap.advantages * 1.01
    assert tc.recompute(run, bad)["loss_diff"] > 1e-5 * abs(cap.loss) or tc.recompute(run, bad)["grad_diff"] > 1e-6
    bad = copy.copy(cap)
    bad.old = cap.old + 0.05 * cap.completion_mask
    assert tc.recompute(run, bad)["grad_diff"] > 1e-4
    bad = copy.copy(cap)
    bad.grad = cap.grad.flip(0)
    assert tc.recompute(run, bad)["grad_diff"] > 1e-4


def test_advantages_are_trl_presets(setup, runs):
    assert tc.advantage_check(runs["dapo"], setup.tokenizer, "trl") < 1e-6
    assert tc.advantage_check(runs["dapo"], setup.tokenizer, "dr-grpo") > 1e-3  # no std: another convention fails


def test_mu_one_gives_exact_ratio_one_and_no_old(setup):
    run = tc.run_trl(setup, "dapo", max_steps=2, num_iterations=1)
    assert all(c.old is None for c in run.captures)
    assert within(tc.agreement(run))
    for c in run.captures:
        m = tc.recompute(run, c)["metrics"]
        assert m["ratio_mean"] == 1.0 and m["clip_frac"] == 0.0


def test_minibatches_and_clip_settings(setup):
    run = tc.run_trl(setup, "grpo", max_steps=4, num_iterations=1, steps_per_generation=4)
    assert within(tc.agreement(run))
    assert all(c.old is not None for c in run.captures)  # two optimizer steps per generation: off-policy
    clip = tc.run_trl(setup, "grpo", max_steps=4, epsilon=0.1, epsilon_high=0.3, delta=1.5)
    assert within(tc.agreement(clip))
    assert max(tc.recompute(clip, c, eps_low=0.2, eps_high=0.2, delta=None)["grad_diff"] for c in clip.captures) > 1e-4


def test_sampler_logps(setup, runs):
    base = tc.initial_model(setup)
    cap = runs["dapo"].captures[0]
    real = cap.completion_mask > 0
    same = tc.sampler_logps(base, cap)
    assert float((same - cap.old)[real].abs().max()) < 1e-5
    assert float(same[~real].abs().sum()) == 0.0
    for kw in (dict(noise=0.05), dict(dtype=torch.bfloat16), dict(temperature=0.8)):
        assert float((tc.sampler_logps(base, cap, **kw) - cap.old)[real].abs().max()) > 1e-3
    for kw, name in ((dict(temperature=0.0), "temperature"), (dict(noise=-1.0), "noise")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            tc.sampler_logps(base, cap, **kw)


def test_rollout_correction_on_captured_tensors(setup, runs):
    run = runs["dapo"]
    cap = run.captures[2]
    roll = tc.sampler_logps(tc.initial_model(setup), cap, temperature=0.8)
    plain = tc.recompute(run, cap)
    fixed = tc.recompute(run, cap, rollout_logp=roll, is_level="token", is_mode="truncate", is_max=3.0)
    assert fixed["metrics"]["clip_frac"] == plain["metrics"]["clip_frac"]  # the ratio is still the trainer's
    assert abs(fixed["loss"] - plain["loss"]) > 1e-3 * abs(plain["loss"])
    same = tc.recompute(run, cap, rollout_logp=cap.old, is_level="token", is_mode="truncate", is_max=3.0)
    assert abs(same["loss"] - plain["loss"]) < 1e-9  # sampler = pi_old: weights 1


def test_errors_name_the_argument(setup, runs):
    run = runs["dapo"]
    cap = run.captures[0]
    for kw, name in ((dict(std="pop"), "std"), (dict(old="x"), "old"), (dict(kl="x"), "kl"),
                     (dict(normaliser="x"), "normaliser"), (dict(preset="verl-vanilla"), "preset")):
        with pytest.raises(ValueError, match=f"`{name}`"):
            tc.recompute(run, cap, **kw)
    with pytest.raises(ValueError, match="`device`"):
        tc.run_trl(setup, device="tpu")
    with pytest.raises(ValueError, match="`symbols`"):
        tc.char_tokenizer("aa")
    with pytest.raises(ValueError, match="`n`"):
        tc.word_problems(0)


# ------------------------------------------------------------------------------------ the hub path


def test_word_problems_and_last_number_reward():
    rows = tc.word_problems(50, seed=3, conversational=False)
    for row in rows:
        nums = [int(x) for x in __import__("re").findall(r"\d+", row["prompt"])]
        assert len(nums) == 3
        assert int(row["answer"]) in (nums[0] + nums[1] - nums[2], nums[2] + nums[0] * nums[1], nums[0] // nums[1] + nums[2])
        assert int(row["answer"]) >= 0
    assert tc.word_problems(3, seed=1) == tc.word_problems(3, seed=1)
    chat = tc.word_problems(2, conversational=True)
    assert chat[0]["prompt"][0]["role"] == "user"
    r = tc.last_number_reward(["so 12 - 3 = 9\n9", "it is 10", "no number", [{"role": "assistant", "content": "= 1,234"}]],
                              ["9", "9", "9", "1234"])
    assert r == [1.0, 0.0, 0.0, 1.0]


def test_hub_path_runs_on_a_local_model(tmp_path):
    """hub_setup and run_trl as the chapter's opt-in path uses them, on a local folder instead of a hub id."""
    symbols = "".join(sorted({c for row in tc.word_problems(200, conversational=False) for c in row["prompt"]} | set("0123456789-")))
    tok = tc.char_tokenizer(symbols)
    model = tc.tiny_llama(len(tok), hidden=32, heads=2, max_positions=256)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    setup = tc.hub_setup(str(tmp_path), n_prompts=8, max_completion_length=6)
    assert isinstance(setup.dataset[0]["prompt"], str)  # no chat template: plain prompts
    run = tc.run_trl(setup, "dapo", max_steps=1, per_device_train_batch_size=4, num_generations=4,
                     gradient_accumulation_steps=1, num_iterations=1)
    assert len(run.captures) == 1 and len(run.rewards) == 4
    assert within(tc.agreement(run))


def test_module_imports_without_trl_or_transformers(tmp_path):
    code = textwrap.dedent(
        """
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"trl", "transformers", "tokenizers", "datasets", "accelerate"}:
                    raise ImportError(name + " is blocked")
        sys.meta_path.insert(0, Block())
        import grpo_core, grpo_core.training, grpo_core.training.trl_check as tc
        print("ok", tc.TRL_VERSION, len(tc.word_problems(2)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok 1.16.0 2" in out.stdout
