"""VARIANTS against the releases: every setting spelled as TRL 1.16.0 / verl 0.9.1 accept it, and
every component marked "exact" computed as the framework computes it (the trainer's own loss call
and advantage estimator on random batches). And grpo_core's KL kinds against verl's ``kl_penalty``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conformance_harness import RECORDER, TOL, TrlHarness, both, check, max_abs, random_batch, verl_config, verl_loss
from grpo_core import compute_advantages, grpo_loss, kl_estimate
from grpo_core.training.variants import EXACT, VARIANTS, variant_config

MAX_NEW = 7  # the default sort task's generation limit, which the trainer passes as max_len


def _verl_yaml_keys() -> set[str]:
    import yaml
    import verl

    path = Path(verl.__file__).parent / "trainer" / "config" / "_generated_ppo_trainer.yaml"
    keys = set()

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                keys.add(prefix + k)
                walk(v, prefix + k + ".")

    walk(yaml.safe_load(path.read_text()), "")
    return keys


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_trl_settings_are_accepted_by_the_release(name, tmp_path):
    import trl

    s = VARIANTS[name].trl
    cls = getattr(trl, s.config)
    cls(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **s.settings)  # raises if misspelt
    assert s.status == EXACT or s.status.startswith("partial: ")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_verl_settings_are_keys_of_the_release(name):
    from verl.trainer.ppo import core_algos

    keys = _verl_yaml_keys()
    dapo_source = None
    for key, value in VARIANTS[name].verl.settings.items():
        if key.startswith("+"):  # a key the YAML does not have: read by the component named in the key
            assert key[1:] not in keys, f"{key}: the YAML has it; drop the +"
            if dapo_source is None:  # read, not imported: the module needs aiohttp, which the suite does not
                import verl

                dapo_source = (Path(verl.__file__).parent / "experimental" / "reward_loop" / "reward_manager" /
                               "dapo.py").read_text()
            leaf = key.split(".")[-1]
            assert re.search(rf"\b{leaf}\b", dapo_source), f"{key}: verl's dapo reward manager never reads {leaf}"
        else:
            assert key in keys, f"{key} is not a key of verl 0.9.1's ppo_trainer config"
        if key.endswith("loss_mode"):
            assert value in core_algos.POLICY_LOSS_REGISTRY
        if key.endswith("adv_estimator"):
            assert value in core_algos.ADV_ESTIMATOR_REGISTRY
        if key.endswith("loss_agg_mode"):
            assert value in ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean",
                             "seq-mean-token-sum-norm")
    s = VARIANTS[name].verl
    assert s.status == EXACT or s.status.startswith("partial: ")


def _exact(component):
    return [(n, fw) for n, v in VARIANTS.items() for fw in ("trl", "verl") if getattr(getattr(v, fw), component) == EXACT]


def test_the_table_claims_some_exact_components():
    assert _exact("loss") and _exact("advantages")


def _trainer_loss(name, batch):
    cfg = variant_config(name)
    settings = cfg.loss_settings(MAX_NEW)
    return lambda leaf: grpo_loss(leaf, batch.old, None, batch.adv, batch.mask, **settings)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("name,framework", _exact("loss"), ids=[f"{n}-{f}" for n, f in _exact("loss")])
def test_exact_losses(trl_harness, name, framework, seed):
    """The trainer's loss call for the variant equals the framework's loss with the variant's settings.
    Answers are at most the generation limit long (3..MAX_NEW tokens wide), as in the trainer:
    grpo_loss refuses a max_len below the longest answer."""
    batch = random_batch(2000 + seed, T=3 + seed % (MAX_NEW - 2))
    s = getattr(VARIANTS[name], framework)
    if framework == "trl":
        tr = trl_harness.trainer(**s.settings)
        theirs = lambda leaf: (TrlHarness.loss(tr, batch, leaf)[0], {})  # noqa: E731
        fn = "trl GRPOTrainer._compute_loss"
    else:
        actor = {k[len("actor_rollout_ref.actor."):]: v for k, v in s.settings.items()
                 if k.startswith("actor_rollout_ref.actor.") and "." not in k[len("actor_rollout_ref.actor."):]}
        mode = s.settings.get("actor_rollout_ref.actor.policy_loss.loss_mode", "vanilla")
        cfg = verl_config(mode, **{k: v for k, v in actor.items() if k != "ppo_mini_batch_size"})
        theirs = lambda leaf: (verl_loss(cfg, batch, leaf, loss_scale_factor=actor.get("loss_scale_factor"))[0], {})  # noqa: E731
        fn = "verl core_algos"
    ours, th = both(lambda leaf: (_trainer_loss(name, batch)(leaf)[0], {}), theirs, batch)
    check(f"VARIANTS[{name!r}].{framework} (loss)", fn, ours, th, batch)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("name,framework", _exact("advantages"), ids=[f"{n}-{f}" for n, f in _exact("advantages")])
def test_exact_advantages(trl_harness, name, framework, seed):
    """The trainer's advantage estimator for the variant equals the framework's with its settings."""
    batch = random_batch(2100 + seed, empty=False, min_len=1)
    cfg = variant_config(name)
    mode = "rloo" if cfg.algo == "rloo" else cfg.advantages
    r32 = batch.rewards.float()  # the trainer's rewards are float32, as TRL's
    ours = compute_advantages(mode, r32, batch.G)
    s = getattr(VARIANTS[name], framework)
    if framework == "trl":
        tr = trl_harness.trainer(rollout=True, **{**s.settings, "num_generations": batch.G})
        theirs = TrlHarness.generate(tr, batch, batch.rewards)[0]["advantages"]
        fn = "trl GRPOTrainer._generate_and_score_completions"
    else:
        import numpy as np
        from verl.trainer.ppo import core_algos

        tlr = torch.zeros(batch.B, batch.T, dtype=torch.float32)
        tlr[torch.arange(batch.B), batch.lengths - 1] = r32
        index = np.array([i // batch.G for i in range(batch.B)], dtype=object)
        est = s.settings["algorithm.adv_estimator"]
        kw = {}
        if est == "grpo":
            kw["norm_adv_by_std_in_grpo"] = s.settings.get("algorithm.norm_adv_by_std_in_grpo", True)
        theirs = core_algos.get_adv_estimator_fn(est)(tlr, batch.mask.long(), index, **kw)[0][:, 0]
        fn = f"verl core_algos ({est})"
    d = max_abs(ours, theirs)
    RECORDER.add(f"VARIANTS[{name!r}].{framework} (advantages)", fn, loss=d)
    assert d <= TOL


KL_KINDS = [("k1", "k1"), ("k1", "kl"), ("k2", "mse"), ("k3", "low_var_kl"), ("k3", "k3"), ("k1+", "kl+"),
            ("k2+", "k2+"), ("k3+", "k3+"), ("k3+", "low_var_kl+")]


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize("ours_kind,verl_kind", KL_KINDS, ids=[k[1] for k in KL_KINDS])
def test_kl_kinds_against_kl_penalty(ours_kind, verl_kind, seed):
    """kl_estimate(kind, clamp="verl") against verl's kl_penalty: value and gradient, with reference
    log-probs up to 25 nats away (the clamps of low_var_kl act)."""
    from verl.trainer.ppo import core_algos

    batch = random_batch(2200 + seed, far=0.0, ref_far=25.0, empty=False)
    real = batch.mask > 0
    a, b = batch.leaf(), batch.leaf()
    ours = kl_estimate(a, batch.ref, ours_kind, clamp="verl")
    theirs = core_algos.kl_penalty(b, batch.ref, verl_kind)
    (ga,) = torch.autograd.grad((ours * batch.mask).sum(), a)
    (gb,) = torch.autograd.grad((theirs * batch.mask).sum(), b)
    dv, dg = max_abs(ours[real].detach(), theirs[real].detach()), max_abs(ga[real], gb[real])
    RECORDER.add(f"kl_estimate {ours_kind!r}, clamp='verl'", f"verl core_algos.kl_penalty ({verl_kind})", loss=dv,
                 grad=dg)
    x = (batch.ref - batch.logp)[real].clamp(-20, 20)
    if float((x.exp() - x - 1).max()) > 10:
        RECORDER.event("verl: batches where k3 exceeds 10 (verl clamps it there, TRL does not)")
    assert dv <= TOL * max(1.0, float(theirs[real].abs().max())) and dg <= TOL
