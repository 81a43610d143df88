"""The trainer's GPU path, exercised on the CPU: ``gpu_config``, device choice and checks, where
the trainer puts its models, generators and batches, and generation on the trainer's device.

No test here needs a GPU: the configuration for one runs (shortened) with ``device="cpu"``, the
CUDA choice is tested with ``torch.cuda`` patched to report a GPU, and every tensor the trainer
hands to generation or to the loss is checked to be on ``trainer.device``."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from grpo_core.training import trainer as tr
from grpo_core.training.trainer import GRPOConfig, GRPOTrainer, gpu_config, pick_device


def _short(**kw) -> GRPOConfig:
    """gpu_config's model, task and group size, with few prompts and steps (seconds on a CPU)."""
    return gpu_config(device="cpu", steps=2, prompts_per_step=2, sft_steps=5, sft_batch=16, eval_size=16, **kw)


def test_gpu_config_is_a_valid_larger_configuration_and_takes_overrides():
    cfg = gpu_config()
    cfg.check()
    default = GRPOConfig()
    assert (cfg.d_model, cfg.n_layers, cfg.G, cfg.prompts_per_step) == (128, 4, 16, 64)
    assert cfg.d_model > default.d_model and cfg.G > default.G and cfg.task_size == 8
    assert cfg.device is None  # picks the GPU where there is one
    assert gpu_config(G=4, device="cpu").G == 4
    with pytest.raises(TypeError):
        gpu_config(no_such_field=1)


def test_cuda_is_picked_when_present_and_the_cpu_otherwise(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device() == torch.device("cuda")
    assert pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"`device`='cuda:3': there are only 1 CUDA device"):
        pick_device("cuda:3")


def test_asking_for_cuda_without_a_gpu_names_the_argument(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"`device`='cuda' asks for CUDA"):
        GRPOConfig(device="cuda").check()
    with pytest.raises(ValueError, match=r"`device`='cuda' asks for CUDA"):
        pick_device("cuda")


def test_fused_adam_is_asked_for_on_cuda_as_on_the_cpu(monkeypatch):
    monkeypatch.setitem(tr.SPEEDUPS, "fused_adam", True)
    assert tr._adam_kwargs(torch.device("cuda")) == {"fused": True}
    assert tr._adam_kwargs(torch.device("cpu")) == {"fused": True}
    assert tr._adam_kwargs(torch.device("mps")) == {}
    monkeypatch.setitem(tr.SPEEDUPS, "fused_adam", False)
    assert tr._adam_kwargs(torch.device("cuda")) == {}


def test_a_gpu_warm_up_is_cached_apart_from_the_cpu_one(monkeypatch, tmp_path):
    """The base model's cache key carries the device type off the CPU (a GPU warm-up gives
    slightly different weights): the CPU's cached model is never loaded for a GPU run."""
    monkeypatch.setenv("GRPO_CORE_CACHE", str(tmp_path))
    cfg = _short()
    tr.pretrain_base(cfg)
    cpu_files = sorted(p.name for p in tmp_path.glob("base-*.pt"))
    assert len(cpu_files) == 1
    monkeypatch.setattr(tr, "pick_device", lambda device=None: torch.device("cpu") if device == "cpu" else torch.device("cuda"))
    seen = []
    monkeypatch.setattr(tr, "_warm_up", lambda cfg, task, model, device, log: seen.append(device))
    tr.pretrain_base(dataclasses.replace(cfg, device=None))
    assert seen == [torch.device("cuda")]  # warmed up on the GPU, not loaded from the CPU's file
    assert len(sorted(tmp_path.glob("base-*.pt"))) == 2


def _on(device, *tensors) -> bool:
    return all(t.device == device for t in tensors if isinstance(t, torch.Tensor))


def test_models_generators_batches_and_generation_live_on_the_trainer_device(monkeypatch):
    cfg = _short()
    trainer = GRPOTrainer(cfg)
    dev = trainer.device
    assert dev == torch.device("cpu")
    for model in (trainer.policy, trainer.ref):
        assert all(p.device == dev for p in model.parameters())
    assert all(not p.requires_grad for p in trainer.ref.parameters())
    assert trainer.sample_gen.device == dev

    calls = []
    real_generate = tr.generate

    def spy(model, prompts, *args, generator=None, **kw):
        calls.append((next(model.parameters()).device, prompts.device, generator.device if generator is not None else None))
        return real_generate(model, prompts, *args, generator=generator, **kw)

    monkeypatch.setattr(tr, "generate", spy)
    losses = []
    real_loss = trainer.loss_fn

    def loss_spy(logp, old_logp, ref_logp, adv, mask, **settings):
        losses.append(_on(dev, logp, old_logp, ref_logp, adv, mask))
        return real_loss(logp, old_logp, ref_logp, adv, mask, **settings)

    trainer.loss_fn = loss_spy
    batch = trainer.rollout(trainer.task.sample_ids(cfg.prompts_per_step, trainer.gen))
    assert _on(dev, batch["prompts"], batch["comp"], batch["mask"], batch["rewards"], batch["score"])
    assert batch["comp"].shape[0] == cfg.prompts_per_step * cfg.G
    history = trainer.train()
    accuracy = trainer.evaluate()
    assert calls and all(c == (dev, dev, dev) for c in calls)
    assert losses and all(losses)
    assert len(history) == cfg.steps and all(math.isfinite(h["loss"]) for h in history)
    assert 0.0 <= accuracy <= 1.0
