"""The GRPO trainer's pieces, and a short run that learns."""

import json

import pytest
import torch

import grpo_core.training.trainer as trainer_mod
from grpo_core import group_advantages
from grpo_core.train import main as cli_main
from grpo_core.training.trainer import GRPOConfig, GRPOTrainer


pytestmark = pytest.mark.usefixtures("isolated_cache")


def tiny(**kw):
    base = dict(task="sort", d_model=32, n_layers=1, n_heads=2, sft_steps=60, sft_batch=64,
                prompts_per_step=8, G=4, steps=3, eval_size=64, device="cpu")
    base.update(kw)
    return GRPOConfig(**base)


@pytest.fixture
def captured(monkeypatch):
    calls = []
    real = trainer_mod.grpo_loss

    def spy(logp, old_logp, ref_logp, adv, mask, **kw):
        calls.append(dict(logp=logp.detach().clone(), old=old_logp.clone(), adv=adv.clone(), mask=mask.clone(), **kw))
        return real(logp, old_logp, ref_logp, adv, mask, **kw)

    monkeypatch.setattr(trainer_mod, "grpo_loss", spy)
    return calls


def test_pi_old_is_fixed_across_inner_passes_and_the_first_ratio_is_one(captured, monkeypatch):
    # nonzero advantages, so that the policy moves even if the tiny base model solves nothing
    monkeypatch.setattr(GRPOTrainer, "advantages", lambda self, r: torch.linspace(-1, 1, r.numel()))
    tr = GRPOTrainer(tiny(mu=3, minibatches=1))
    rec = tr.step()
    assert len(captured) == 3
    assert all(torch.equal(c["old"], captured[0]["old"]) for c in captured)
    first = captured[0]
    assert torch.equal(first["logp"] * first["mask"], first["old"] * first["mask"])  # ratio exactly 1
    assert not torch.equal(captured[2]["logp"], captured[0]["logp"])  # the policy moved
    assert rec["ratio_mean"] != 1.0 or rec["clip_frac"] == 0.0


def test_advantages_are_group_advantages_broadcast_per_completion(captured, monkeypatch):
    rewards_seen = []
    real_adv = GRPOTrainer.advantages

    def record(self, rewards):
        rewards_seen.append(rewards.clone())
        return real_adv(self, rewards)

    monkeypatch.setattr(GRPOTrainer, "advantages", record)
    tr = GRPOTrainer(tiny())
    tr.step()
    adv = captured[0]["adv"]
    assert adv.shape == (8 * 4,)
    assert torch.allclose(adv, group_advantages(rewards_seen[0], 4))


def test_algo_rloo_uses_leave_one_out_advantages(captured, monkeypatch):
    rewards_seen = []
    real = GRPOTrainer.rollout

    def spy(self, ids, repeat=None):
        out = real(self, ids, repeat)
        rewards_seen.append(out["rewards"].clone())
        return out

    monkeypatch.setattr(GRPOTrainer, "rollout", spy)
    GRPOTrainer(tiny(algo="rloo")).step()
    r = rewards_seen[0].view(-1, 4)
    expected = (r - (r.sum(1, keepdim=True) - r) / 3).reshape(-1)
    assert torch.allclose(captured[0]["adv"], expected)


def test_sort_task_size_sets_the_number_of_digits():
    cfg = tiny(task_size=3)
    task = cfg.make_task()
    assert task.n_digits == 3 and task.prompt_len == 4
    tr = GRPOTrainer(cfg)
    assert tr.task.n_digits == 3 and tr.policy.cfg.max_len == 4 + 5


def test_padding_is_masked(captured):
    tr = GRPOTrainer(tiny())
    tr.step()
    mask = captured[0]["mask"]
    assert mask.dtype == torch.float32 and set(mask.unique().tolist()) <= {0.0, 1.0}
    # once a row is masked, it stays masked (nothing after <eos> counts)
    assert (mask[:, 1:] <= mask[:, :-1]).all()


def test_reference_model_is_never_updated(monkeypatch):
    monkeypatch.setattr(GRPOTrainer, "advantages", lambda self, r: torch.linspace(-1, 1, r.numel()))
    tr = GRPOTrainer(tiny(beta=0.1, steps=2))
    before = [p.clone() for p in tr.ref.parameters()]
    policy_before = [p.clone() for p in tr.policy.parameters()]
    tr.train()
    assert all(torch.equal(a, b) for a, b in zip(before, tr.ref.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(policy_before, tr.policy.parameters()))
    assert all(not p.requires_grad for p in tr.ref.parameters())


def test_dynamic_sampling_fills_the_batch_with_groups_that_have_spread():
    tr = GRPOTrainer(tiny(dynamic_sampling=True, max_resample=8))
    coin = torch.Generator().manual_seed(0)
    # a stand-in verifier: each answer right with probability 0.3, so about a quarter of the
    # groups of 4 have no spread (0.7**4 + 0.3**4) and must be replaced
    tr.task = type(tr.task)()
    object.__setattr__(tr.task, "reward", lambda ids, comp: (torch.rand(ids.numel(), generator=coin) < 0.3).float())
    batch, first_zero_std = tr._batch()
    r = batch["rewards"].view(-1, 4)
    assert batch["ids"].numel() == 8 and r.shape == (8, 4) and batch["comp"].shape[0] == 32
    assert (r.amax(1) != r.amin(1)).all()
    assert tr.samples > 32  # it had to sample more than one batch


def test_kl_target_switches_on_the_adaptive_controller(monkeypatch):
    monkeypatch.setattr(GRPOTrainer, "advantages", lambda self, r: torch.linspace(-1, 1, r.numel()))
    tr = GRPOTrainer(tiny(beta=0.05, kl_target=1e-6, steps=3))
    tr.train()
    betas = [rec["beta"] for rec in tr.history]
    # step 1 samples from the base model itself: KL(pi_old || pi_ref) = 0 is below the target, so
    # beta drops; after that the policy has moved, KL exceeds the tiny target and beta rises
    assert betas[0] == 0.05 and betas[1] < betas[0] and betas[2] > betas[1]


@pytest.mark.parametrize(
    "kwargs,pattern",
    [(dict(G=1), "`G` must be at least 2"), (dict(minibatches=3), "`minibatches`=3 must divide"),
     (dict(temperature=0.0), "`temperature` must be > 0"), (dict(advantages="ppo"), "`advantages`='ppo'"),
     (dict(task="chess"), "`task`='chess'"), (dict(algo="dpo"), "`algo`='dpo'"),
     (dict(task="add", task_size=4), "`task_size` applies to the sort task only"),
     (dict(task_size=1), "`task_size` must be an int >= 2"), (dict(gae_lambda=-0.1), "`gae_lambda` must be")],
)
def test_config_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        tiny(**kwargs).check()


def test_short_run_beats_the_base_model():
    torch.manual_seed(0)
    cfg = tiny(d_model=48, n_layers=2, n_heads=4, sft_steps=250, sft_batch=128, prompts_per_step=32, G=8,
               steps=25, eval_size=256, lr=1e-3)
    tr = GRPOTrainer(cfg)
    before = tr.evaluate()
    tr.train()
    after = tr.evaluate()
    assert after > before + 0.15, (before, after)


def test_cli_prints_one_json_line(capsys):
    result = cli_main(["--steps", "2", "--quiet", "--set", "sft_steps=20", "--set", "d_model=32",
                       "--set", "n_layers=1", "--set", "prompts_per_step=4", "--set", "G=4", "--set", "eval_size=32",
                       "--device", "cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    parsed = json.loads(lines[0])
    assert parsed == json.loads(json.dumps(result))
    for key in ("heldout_before", "heldout_after", "wall_s", "peak_memory_mb", "samples"):
        assert key in parsed
    assert parsed["samples"] == 2 * 4 * 4
    assert parsed["algo"] == "grpo" and parsed["trainable_params"] == parsed["params"]


def test_cli_ppo_and_gpu_config(capsys):
    result = cli_main(["--algo", "ppo", "--steps", "1", "--quiet", "--set", "sft_steps=5", "--set", "d_model=32",
                       "--set", "n_layers=1", "--set", "prompts_per_step=2", "--set", "G=2", "--set", "eval_size=8",
                       "--set", "task_size=3", "--device", "cpu"])
    assert result["algo"] == "ppo" and result["samples"] == 4
    assert result["trainable_params"] > 1.9 * result["params"]  # the critic is a second transformer
    assert result["config"]["task_size"] == 3
    from grpo_core.training.cli import config_from_args
    cfg, _ = config_from_args(["--gpu-config", "--device", "cpu"])
    assert cfg.task_size == 8 and cfg.G == 16 and cfg.d_model == 128
    cfg, _ = config_from_args(["--cpu-config", "--device", "cpu"])
    assert cfg.task_size is None and cfg.G == 8


def test_cosine_schedule_goes_from_lr_to_a_tenth():
    tr = GRPOTrainer(tiny(lr_schedule="cosine", steps=5, lr=1e-3))
    factors = [tr.lr_factor(k) for k in range(5)]
    assert factors[0] == 1.0 and abs(factors[-1] - 0.1) < 1e-12 and abs(factors[2] - 0.55) < 1e-12
    assert all(a > b for a, b in zip(factors, factors[1:]))
    tr.train()
    assert [rec["lr"] for rec in tr.history] == pytest.approx([1e-3 * f for f in factors])
    assert GRPOTrainer(tiny(lr_schedule="constant")).lr_factor(3) == 1.0
    with pytest.raises(ValueError, match="`lr_schedule`='linear'"):
        tiny(lr_schedule="linear").check()


def test_with_one_pass_pi_old_is_the_update_forward_and_speedups_do_not_change_the_first_update(captured):
    tr = GRPOTrainer(tiny(mu=1, minibatches=1))
    tr.step()
    c = captured[0]
    assert torch.equal(c["logp"], c["old"])  # the same forward pass: ratio exactly 1
    fast = captured[0]
    slow_calls = []
    saved = dict(trainer_mod.SPEEDUPS)
    try:
        trainer_mod.SPEEDUPS.update({k: False for k in saved})
        real = trainer_mod.grpo_loss
        trainer_mod.grpo_loss = lambda logp, old, *a, **kw: (slow_calls.append(logp.detach().clone()), real(logp, old, *a, **kw))[1]
        tr_slow = GRPOTrainer(tiny(mu=1, minibatches=1))
        tr_slow.step()
    finally:
        trainer_mod.SPEEDUPS.update(saved)
        trainer_mod.grpo_loss = real
    # same samples (same generator), same log-probabilities up to float rounding
    assert torch.allclose(slow_calls[0] * fast["mask"], fast["logp"] * fast["mask"], atol=1e-5)


def test_max_new_tokens_beyond_the_task_limit_fits_the_model():
    cfg = tiny(task="add", max_new_tokens=8, steps=1, sft_steps=5)
    tr = GRPOTrainer(cfg)
    assert tr.policy.cfg.max_len == 6 + 8
    rec = tr.step()
    assert rec["completion_len"] <= 8


def test_threads_apply_while_training_and_are_restored():
    seen = []
    real = trainer_mod.GRPOTrainer._step

    def spy(self):
        seen.append(torch.get_num_threads())
        return real(self)

    before = torch.get_num_threads()
    tr = GRPOTrainer(tiny(threads=1, steps=1))
    trainer_mod.GRPOTrainer._step = spy
    try:
        tr.step()
    finally:
        trainer_mod.GRPOTrainer._step = real
    assert seen == [1] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="`threads`"):
        tiny(threads=0).check()


# ------------------------------------------------------------------ presets, lengths, base seed


def test_a_loss_preset_is_preset_loss_with_its_overrides(monkeypatch):
    from grpo_core import preset_loss
    calls = []

    cfg = tiny(loss_preset="trl-cispo", loss_overrides={"eps_high": 4.0}, minibatches=2)
    tr = GRPOTrainer(cfg)

    def spy(logp, old, ref, adv, mask, **kw):
        calls.append(kw)
        loss, m = tr_loss(logp, old, ref, adv, mask, **kw)
        want, _ = preset_loss("trl-cispo", logp, old, ref, adv, mask, eps_high=4.0)
        assert torch.allclose(loss, want)
        return loss, m

    tr_loss = tr.loss_fn
    tr.loss_fn = spy
    tr.step()
    assert calls and all(kw == {"eps_high": 4.0} for kw in calls)
    assert cfg.loss_settings(7) == {"eps_high": 4.0}
    assert tiny(loss_preset="verl-vanilla", beta=0.04).loss_settings(7) == {"beta": 0.04, "kl": "k3"}


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(loss_preset="ppo-penalty"), "`loss_preset`='ppo-penalty'"),
    (dict(loss_overrides={"eps_high": 0.3}), "`loss_overrides` needs a `loss_preset`"),
    (dict(loss_preset="trl-cispo", loss_overrides={"eps_low": 0.1}), "cannot take `eps_low`"),
    (dict(loss_preset="trl-grpo", loss_overrides=[1]), "`loss_overrides` must be a dict"),
    (dict(base_seed=-1), "`base_seed`"),
])
def test_preset_config_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        tiny(**kwargs).check()


def test_reinforce_pp_advantages_get_the_mask_and_are_per_token(captured):
    GRPOTrainer(tiny(advantages="verl-reinforce_plus_plus")).step()
    adv, mask = captured[0]["adv"], captured[0]["mask"]
    assert adv.shape == mask.shape
    assert bool((adv[mask == 0] == 0).all())
    assert abs(float((adv * mask).sum() / mask.sum())) < 1e-5       # whitened over the batch's tokens


def test_lengths_of_right_and_wrong_answers_are_logged():
    tr = GRPOTrainer(tiny(task="sort-work", task_size=3, sft_steps=150))
    for _ in range(3):
        rec = tr.step()
        right, wrong, frac = rec["len_right"], rec["len_wrong"], rec["reward_mean"]
        parts = [(right, frac), (wrong, 1 - frac)]
        total = sum(v * w for v, w in parts if w > 0)
        assert total == pytest.approx(rec["completion_len"], rel=1e-5)
        if frac == 0:
            assert rec["len_right"] != rec["len_right"]             # NaN: no right answer


def test_one_base_seed_gives_several_runs_the_same_base_model():
    from grpo_core.training.trainer import pretrain_base
    a = pretrain_base(tiny(seed=1, base_seed=0))
    b = pretrain_base(tiny(seed=0))
    c = pretrain_base(tiny(seed=1))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
