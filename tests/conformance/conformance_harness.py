"""How the conformance suite reaches TRL 1.16.0 and verl 0.9.1, and the random batches it feeds them.

- :func:`random_batch`: a crafted batch in float64: ragged lengths with fully masked answers,
  groups whose rewards are all equal (advantage 0), tokens far off-policy (where the clips, the
  dual clip and the clamps act), reference and sampler log-probabilities, entropies.
- TRL: :class:`TrlHarness` builds a real ``GRPOTrainer`` on a 2-layer ``LlamaConfig`` model with a
  character tokenizer made here (no download), whose per-token log-probabilities are replaced by
  the batch's (the loss arithmetic is TRL's own), and calls ``_compute_loss`` and
  ``_generate_and_score_completions``.
- verl: the ``core_algos`` functions, called directly, with an ``ActorConfig``.
- :class:`Recorder`: the max differences per preset, printed and written by ``conftest.py``.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch

F64 = torch.float64
TOL = 1e-6  # the suite's tolerance for loss, gradient and metrics


# ------------------------------------------------------------------------------------ batches


@dataclass
class Batch:
    """One crafted batch: B = groups x G answers of up to T tokens (float64, bool-able mask)."""

    G: int
    lengths: torch.Tensor  # [B] long
    mask: torch.Tensor  # [B, T] float64 0/1
    old: torch.Tensor  # log pi_old
    logp: torch.Tensor  # log pi_theta (the value of the leaf)
    ref: torch.Tensor  # log pi_ref
    roll: torch.Tensor  # the sampler's log-probs
    entropy: torch.Tensor
    rewards: torch.Tensor  # [B] float64 (one reward)
    adv: torch.Tensor  # [B] float64
    seed: int = 0

    @property
    def B(self) -> int:
        return self.mask.shape[0]

    @property
    def T(self) -> int:
        return self.mask.shape[1]

    def leaf(self) -> torch.Tensor:
        return self.logp.clone().requires_grad_(True)

    def rows(self, sl: slice) -> "Batch":
        """The answers ``sl`` (a micro-batch), same T."""
        return Batch(self.G, self.lengths[sl], self.mask[sl], self.old[sl], self.logp[sl], self.ref[sl], self.roll[sl],
                     self.entropy[sl], self.rewards[sl], self.adv[sl], self.seed)


def random_batch(seed: int, *, far: float = 8.0, ref_far: float = 0.0, empty: bool = True, min_len: int = 0,
                 G: int | None = None, groups: int | None = None, T: int | None = None) -> Batch:
    """A random batch. ``far``: the largest |log-ratio| of the off-policy tokens (TRL never clamps,
    so TRL batches keep it moderate; verl batches pass 25 to reach its +-20 clamp); ``ref_far``:
    the same for the reference (verl's k3 clamps); ``empty``: allow fully masked answers."""
    g = torch.Generator().manual_seed(1000 + seed)
    rng = np.random.default_rng(1000 + seed)
    G = G or int(rng.choice([2, 3, 4, 8]))
    groups = groups or int(rng.integers(1, 4))
    B = G * groups
    T = T or int(rng.integers(3, 13))
    lengths = torch.tensor(rng.integers(max(min_len, 1), T + 1, size=B))
    full = int(rng.integers(0, B))
    lengths[full] = T  # one answer fills the width
    if empty and B >= 3 and rng.random() < 0.7:
        lengths[(full + 1 + int(rng.integers(0, B - 1))) % B] = 0  # a fully masked answer (a masked-out truncation)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(F64)
    old = -torch.rand(B, T, generator=g, dtype=F64) * 3.0 - 0.02
    scale = float(rng.choice([0.02, 0.2, 0.5, 1.0]))
    drift = torch.randn(B, T, generator=g, dtype=F64) * scale
    if far > 0:
        wild = torch.rand(B, T, generator=g) < 0.15
        sign = torch.where(torch.rand(B, T, generator=g) < 0.5, -1.0, 1.0).to(F64)
        drift = torch.where(wild, sign * (3.0 + (far - 3.0) * torch.rand(B, T, generator=g, dtype=F64)), drift)
    logp = old + drift
    # garbage at padding: a correct implementation never looks at it
    pad = mask == 0
    logp = torch.where(pad, torch.full_like(logp, -50.0) + 40 * torch.rand(B, T, generator=g, dtype=F64), logp)
    ref = old + torch.randn(B, T, generator=g, dtype=F64) * 0.3
    if ref_far > 0:
        wild = torch.rand(B, T, generator=g) < 0.15
        ref = torch.where(wild, logp + (torch.rand(B, T, generator=g, dtype=F64) * 2 - 1) * ref_far, ref)
    roll = old + torch.randn(B, T, generator=g, dtype=F64) * float(rng.choice([0.05, 0.3, 1.0]))
    roll = roll.float().double()  # an inference engine's log-probs are float32 (TRL reads them as float32)
    entropy = torch.rand(B, T, generator=g, dtype=F64) * 3.0
    # rewards: 0/1, continuous or graded; some groups all equal (zero spread: advantage 0)
    kind = rng.choice(["binary", "continuous", "graded"])
    if kind == "binary":
        r = torch.tensor(rng.integers(0, 2, size=B), dtype=F64)
    elif kind == "graded":
        r = torch.tensor(rng.integers(0, 5, size=B) / 4.0, dtype=F64)
    else:
        r = torch.tensor(rng.normal(size=B), dtype=F64)
    rg = r.view(groups, G)
    for k in range(groups):
        if rng.random() < 0.35:
            rg[k] = float(rng.choice([0.0, 1.0, 0.5]))
    r = rg.reshape(B)
    centred = r.view(groups, G) - r.view(groups, G).mean(1, keepdim=True)
    std = r.view(groups, G).std(1, keepdim=True)
    adv = torch.where(std > 0, centred / (std + 1e-4), torch.zeros_like(centred)).reshape(B)
    return Batch(G, lengths, mask, old, logp, ref, roll, entropy, r, adv, seed)


# ------------------------------------------------------------------------------------ recorder


@dataclass
class Row:
    preset: str
    function: str
    batches: int = 0
    loss: float = 0.0
    grad: float = 0.0
    metric: float = 0.0
    values: float = 0.0  # largest |loss| seen, for scale


@dataclass
class Recorder:
    rows: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)

    def event(self, what: str, n: int = 1) -> None:
        """Count what the batches exercised (the clip acting, a clamp acting, an empty answer, ...)."""
        self.events[what] = self.events.get(what, 0) + n

    def add(self, preset: str, function: str, *, loss=None, grad=None, metric=None, value=None) -> None:
        row = self.rows.setdefault((preset, function), Row(preset, function))
        row.batches += 1
        for name, v in (("loss", loss), ("grad", grad), ("metric", metric), ("values", value)):
            if v is not None:
                setattr(row, name, max(getattr(row, name), float(v)))

    def markdown(self) -> str:
        """A summary per preset (every comparison of it), the detailed rows, the coverage counts."""
        summary = {}
        for row in self.rows.values():
            key = row.preset.split(",")[0]
            s = summary.setdefault(key, Row(key, set()))
            s.function.add(row.function.split(" (")[0].split(" + ")[0])
            s.batches += row.batches
            s.loss, s.grad, s.metric = max(s.loss, row.loss), max(s.grad, row.grad), max(s.metric, row.metric)
        head = ["| {} | compared with | comparisons | max abs diff, {} | max abs diff, gradient | max abs diff, metrics |",
                "|---|---|---|---|---|---|"]

        def line(r, fn):
            return f"| {r.preset} | {fn} | {r.batches} | {r.loss:.1e} | {r.grad:.1e} | {r.metric:.1e} |"

        lines = [head[0].format("preset or estimator", "loss or advantage"), head[1]]
        lines += [line(r, "; ".join(sorted(r.function))) for r in sorted(summary.values(), key=lambda r: r.preset)]
        lines += ["", "Every comparison:", "", head[0].format("comparison", "loss or advantage"), head[1]]
        lines += [line(r, r.function) for r in sorted(self.rows.values(), key=lambda r: (r.preset, r.function))]
        if self.events:
            lines += ["", "| what the batches exercised | count |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(self.events.items())]
        return "\n".join(lines)


RECORDER = Recorder()


def max_abs(a, b) -> float:
    a = torch.as_tensor(a, dtype=F64)
    b = torch.as_tensor(b, dtype=F64)
    if a.numel() == 0:
        return 0.0
    both_nan = torch.isnan(a) & torch.isnan(b)
    d = torch.where(both_nan, torch.zeros_like(a), (a - b).abs())
    return float(d.max())


def compare_metrics(ours: dict, theirs: dict) -> float:
    """Max abs difference over the framework's metric names; every one of them must be ours too."""
    missing = sorted(set(theirs) - set(ours))
    assert not missing, f"grpo_core does not report the framework's metrics {missing}"
    return max([max_abs(ours[k], theirs[k]) for k in theirs] or [0.0])


# ------------------------------------------------------------------------------------ TRL


class TrlHarness:
    """TRL's real ``GRPOTrainer``, with the model's per-token log-probs replaced by the batch's."""

    def __init__(self):
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
        from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
        from trl import GRPOTrainer

        self.dir = tempfile.mkdtemp(prefix="grpo_conformance_tiny_")
        chars = "abcdefghijklmnop"
        vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
        core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        core.decoder = decoders.Fuse()
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>",
                                                 unk_token="<unk>")
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                          pad_token_id=0, eos_token_id=1, bos_token_id=1)
        LlamaForCausalLM(cfg).save_pretrained(self.dir)
        self.tokenizer.save_pretrained(self.dir)
        # loaded from a local path, so that a reference model (beta > 0) is built offline from it
        self.model = AutoModelForCausalLM.from_pretrained(self.dir)
        self.trainers = {}

        class Controlled(GRPOTrainer):
            """Log-probs and entropies come from ``self.policy`` / ``self.reference`` (dicts of tensors)."""

            policy = None
            reference = None

            def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                                   batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                                   **kwargs):
                src = self.reference if (self.ref_model is not None and model is self.ref_model) else self.policy
                assert src["logps"].shape == (input_ids.shape[0], logits_to_keep), "the harness fed the wrong shape"
                return src["logps"], (src["entropy"] if compute_entropy else None), None

        self.cls = Controlled

    def trainer(self, rollout=False, reward_funcs=1, **config):
        """A trainer for ``GRPOConfig(**config)`` (built once per configuration)."""
        from datasets import Dataset
        from trl import GRPOConfig

        key = (rollout, reward_funcs, repr(sorted(config.items())))
        if key in self.trainers:
            return self.trainers[key]
        kw = dict(output_dir=os.path.join(self.dir, "out"), use_cpu=True, bf16=False, report_to="none",
                  save_strategy="no", disable_tqdm=True, per_device_train_batch_size=24, num_generations=2, seed=0,
                  max_completion_length=512, logging_steps=1)
        kw.update(config)
        funcs = [_reward_column(k) for k in range(reward_funcs)]
        data = Dataset.from_dict({"prompt": ["ab"] * 24, **{f"r{k}": [0.0] * 24 for k in range(reward_funcs)}})
        tr = self.cls(model=self.model, reward_funcs=funcs, args=GRPOConfig(**kw), train_dataset=data,
                      processing_class=self.tokenizer, rollout_func=_rollout_func if rollout else None)
        tr.model.train()  # from_pretrained leaves eval mode: metrics would go to "eval", GA would be ignored
        tr.current_gradient_accumulation_steps = 1  # set by transformers only inside its training loop
        self.trainers[key] = tr
        return tr

    @staticmethod
    def loss(tr, batch: Batch, logp_leaf, *, with_ref=False, is_ratio=None, num_items=None, ga=1, processes=1,
             mask=None):
        """TRL's ``_compute_loss`` on the batch; returns (loss, metrics of this call)."""
        m = (batch.mask if mask is None else mask).long()
        B, T = m.shape
        tr.policy = dict(logps=logp_leaf, entropy=batch.entropy)
        inputs = dict(prompt_ids=torch.full((B, 2), 3), prompt_mask=torch.ones(B, 2, dtype=torch.long),
                      completion_ids=torch.where(m.bool(), torch.full((B, T), 5), torch.zeros(B, T, dtype=torch.long)),
                      completion_mask=m, advantages=batch.adv.clone(), old_per_token_logps=batch.old,
                      num_items_in_batch=torch.tensor(int(m.sum()) if num_items is None else num_items))
        if with_ref:
            inputs["ref_per_token_logps"] = batch.ref
        if is_ratio is not None:
            inputs["importance_sampling_ratio"] = is_ratio
        tr._metrics["train"].clear()
        tr._metrics["eval"].clear()
        tr.current_gradient_accumulation_steps = ga
        real_acc = tr.accelerator
        if processes != 1:
            tr.accelerator = _Processes(real_acc, processes)
        try:
            tr.use_vllm = is_ratio is not None  # _compute_loss then applies inputs["importance_sampling_ratio"]
            out = tr._compute_loss(tr.model, inputs)
        finally:
            tr.accelerator = real_acc
            tr.use_vllm = False
            tr.current_gradient_accumulation_steps = 1
        return out, {k: v[-1] for k, v in tr._metrics["train"].items()}

    @staticmethod
    def generate(tr, batch: Batch, rewards, *, vllm=False):
        """TRL's ``_generate_and_score_completions`` for the batch's completions: the advantages (and,
        with ``vllm``, the importance-sampling ratio from the batch's sampler log-probs)."""
        B = batch.B
        lengths = [max(int(n), 1) for n in batch.lengths]
        r = np.asarray(rewards, dtype=np.float64)
        if r.ndim == 1:
            r = r[:, None]
        rows = [{"prompt": "ab", **{f"r{k}": float(r[i, k]) for k in range(r.shape[1])}} for i in range(B)]
        tr.rollout_spec = dict(lengths=lengths, logprobs=[batch.roll[i, :lengths[i]].tolist() for i in range(B)])
        mask = (torch.arange(batch.T)[None, :] < torch.tensor(lengths)[:, None])
        tr.policy = dict(logps=torch.where(mask, batch.old, torch.zeros_like(batch.old)), entropy=batch.entropy)
        tr._metrics["train"].clear()
        if vllm:
            tr.use_vllm = True
            tr._last_loaded_step = tr.state.global_step  # skip the weight sync to a vLLM server
        try:
            out = tr._generate_and_score_completions(rows)
        finally:
            tr.use_vllm = False
        return out, mask


class _Processes:
    """The trainer's accelerator, claiming ``n`` processes (one real process: gathers are local)."""

    def __init__(self, acc, n):
        self._acc, self.num_processes = acc, n

    def __getattr__(self, name):
        return getattr(self._acc, name)


def _reward_column(k):
    def reward(prompts, completions, **kw):
        return kw[f"r{k}"]

    reward.__name__ = f"r{k}"
    return reward


def _rollout_func(prompts, trainer):
    spec = trainer.rollout_spec
    n = len(prompts)
    return {"prompt_ids": [[3, 4]] * n,
            # every completion ends with <eos>, so none counts as truncated
            "completion_ids": [[5] * (spec["lengths"][i] - 1) + [1] for i in range(n)],
            "logprobs": spec["logprobs"][:n]}


# ------------------------------------------------------------------------------------ verl


def verl_config(loss_mode="vanilla", **kw):
    """A minimal verl ``ActorConfig`` (strategy, rollout_n and a micro-batch size are required)."""
    from verl.workers.config import ActorConfig, PolicyLossConfig

    base = dict(strategy="fsdp", rollout_n=2, ppo_micro_batch_size_per_gpu=2)
    base.update(kw)
    return ActorConfig(policy_loss=PolicyLossConfig(loss_mode=loss_mode), **base)


def verl_loss(cfg, batch: Batch, logp_leaf, *, mask=None, adv=None, dp_size=1, batch_num_tokens=None,
              global_batch_size=None, loss_scale_factor=None, is_weights=None, kl_coef=0.0, kl_type="low_var_kl",
              kl_agg=None):
    """verl's policy loss (``core_algos.get_policy_loss_fn``) plus, with ``kl_coef``, its KL loss term as
    ``workers/utils/losses.ppo_loss`` adds it (``kl_penalty`` aggregated with ``loss_agg_mode`` and the
    global batch info). ``global_batch_size`` defaults to the batch's answers, as the trainer passes it."""
    from verl.trainer.ppo import core_algos

    m = batch.mask if mask is None else mask
    mb = m.bool()  # the trainer passes a bool mask (ppo_loss: .to(bool))
    a = (batch.adv[:, None] * m) if adv is None else adv
    info = dict(dp_size=dp_size, batch_num_tokens=int(m.sum()) if batch_num_tokens is None else batch_num_tokens,
                global_batch_size=m.shape[0] if global_batch_size is None else global_batch_size,
                loss_scale_factor=loss_scale_factor)
    cfg.global_batch_info.clear()
    cfg.global_batch_info.update(info)
    fn = core_algos.get_policy_loss_fn(cfg.policy_loss.loss_mode)
    pg, metrics = fn(old_log_prob=batch.old, log_prob=logp_leaf, advantages=a, response_mask=mb,
                     loss_agg_mode=cfg.loss_agg_mode, config=cfg, rollout_is_weights=is_weights)
    if kl_coef:
        kld = core_algos.kl_penalty(logprob=logp_leaf, ref_logprob=batch.ref, kl_penalty=kl_type)
        pg = pg + kl_coef * core_algos.agg_loss(kld, mb, kl_agg or cfg.loss_agg_mode, **cfg.global_batch_info)
    return pg, metrics


def verl_is_weights(batch: Batch, level: str, threshold, mask=None):
    """verl's rollout-correction weights (``rollout_corr_helper.compute_rollout_correction_weights``)."""
    from verl.trainer.ppo import rollout_corr_helper

    m = batch.mask if mask is None else mask
    w, _ = rollout_corr_helper.compute_rollout_correction_weights(
        log_ratio=batch.old - batch.roll, response_mask=m, rollout_is=level, rollout_is_threshold=threshold)
    return w


def grad_of(loss, leaf) -> torch.Tensor:
    (g,) = torch.autograd.grad(loss, leaf, allow_unused=True)
    return torch.zeros_like(leaf) if g is None else g


def both(fn_ours, fn_theirs, batch: Batch):
    """Run both on fresh leaves; return (loss, grad, metrics) of each."""
    a = batch.leaf()
    la, ma = fn_ours(a)
    ga = grad_of(la, a)
    b = batch.leaf()
    lb, mb = fn_theirs(b)
    gb = grad_of(lb, b)
    return (la, ga, ma), (lb, gb, mb)


def check(name: str, function: str, ours, theirs, batch: Batch) -> None:
    """Assert and record: loss, the gradient at real tokens, and every framework metric; count what
    the batch exercised."""
    (la, ga, ma), (lb, gb, mb) = ours, theirs
    mask = batch.mask
    dl = max_abs(la.detach(), lb.detach())
    real = mask > 0
    dg = max_abs(ga[real], gb[real])
    if (~real).any():  # grpo_core's gradient is exactly 0 at padding, whatever the padding holds
        assert float(ga[~real].abs().max()) == 0.0, f"{name}: grpo_core has a gradient at padding"
    dm = compare_metrics(ma, mb) if mb else 0.0
    RECORDER.add(name, function, loss=dl, grad=dg, metric=dm, value=abs(float(lb.detach())))
    _count(name, batch, ma)
    assert dl <= TOL * max(1.0, abs(float(lb.detach()))), f"{name}: loss {float(la.detach())!r} vs {float(lb.detach())!r}"
    assert dg <= TOL * max(1.0, float(gb.abs().max())), f"{name}: gradient differs by {dg:.3g}"
    assert dm <= TOL, f"{name}: metrics differ by {dm:.3g}: ours {ma} theirs {mb}"


def _count(name, batch, metrics) -> None:
    fw = name.split("-")[0] if name.startswith(("trl", "verl")) else "VARIANTS"
    real = batch.mask > 0
    if (batch.mask.sum(1) == 0).any():
        RECORDER.event(f"{fw}: batches with a fully masked answer")
    if batch.B % batch.G == 0:  # whole groups (a micro-batch may cut one)
        groups = batch.rewards.view(-1, batch.G)
        if ((groups.max(1).values - groups.min(1).values) == 0).any():
            RECORDER.event(f"{fw}: batches with a zero-spread group (advantage 0)")
    if metrics.get("clip_frac", 0) > 0:
        RECORDER.event(f"{fw}: batches where the clip (or cap) took gradients away")
    if metrics.get("clip_frac_dual", 0) > 0:
        RECORDER.event(f"{fw}: batches where the dual clip acted")
    d = (batch.logp - batch.old)[real]
    if d.numel() and float(d.abs().max()) > 20:
        RECORDER.event(f"{fw}: batches with |log-ratio| > 20 at a real token (verl's clamp)")
    x = (batch.ref - batch.logp)[real]
    if metrics.get("kl_loss", 0) != 0 and x.numel() and float((x.clamp(-20, 20).exp() - x.clamp(-20, 20) - 1).max()) > 10:
        RECORDER.event(f"{fw}: batches where k3 exceeds 10 (verl clamps it there, TRL does not)")


def finite(x) -> bool:
    return math.isfinite(float(x))
