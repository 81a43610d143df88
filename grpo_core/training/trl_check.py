"""Check a real trainer: TRL's ``GRPOTrainer`` run on a local model, its loss recomputed by grpo_core.

The chapter "Checking a real trainer" (``book/real-trainer.ipynb``) runs TRL 1.16.0's
``GRPOTrainer`` for a few steps and asks, for every micro-batch it trained on: is TRL's loss the
one :func:`grpo_core.preset_loss` computes from the same tensors, and is its gradient?

- :func:`local_setup`: a 2-layer ``LlamaConfig`` model and a character tokenizer for one of the
  book's tasks (:mod:`grpo_core.training.tasks`), written to a temporary folder (nothing is
  downloaded), with a short supervised warm-up on the task's imperfect demonstrations so that
  groups have a spread of rewards; the task's own reward, as a TRL reward function.
- :func:`run_trl`: ``GRPOTrainer`` (a small subclass, :func:`capturing_trainer_class`) trained for
  a few steps; its ``compute_loss`` (a public method of ``transformers.Trainer``) records what TRL
  used for each micro-batch's loss: the completion ids and masks, the advantages,
  ``old_per_token_logps`` (or that TRL used the detached log-probs), ``ref_per_token_logps``,
  ``num_items_in_batch``, the accumulation steps, TRL's loss and its gradient with respect to the
  per-token log-probs, which a forward hook (public PyTorch) reads from the model's output.
- :func:`recompute`: the same loss and gradient from :func:`grpo_core.preset_loss`
  (``"trl-<loss_type>"``), in float64, and their max differences; options change one convention
  at a time (what a wrong convention costs on the same tensors).
- :func:`sampler_logps`: log-probabilities of the captured completions under another sampler (a
  perturbed copy, bfloat16, another temperature): the train-inference mismatch.
- :func:`hub_setup` and :func:`word_problems`: the opt-in path of the chapter (a small hub model
  such as SmolLM2-135M-Instruct on a GPU, grade-school word problems generated here with a
  last-number reward); :func:`run_trl` trains it the same way. The tests run it on a local tiny
  model; nothing here downloads unless the caller passes a hub id on purpose.

transformers, tokenizers, datasets and trl are imported inside the functions only, so importing
``grpo_core`` (or this module) needs torch and NumPy alone; calling these functions needs the
book's pinned ``trl==1.16.0`` (``requirements.txt``).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import tempfile
import warnings
from dataclasses import dataclass, field

import torch

from ..presets import preset_loss
from .tasks import TOKENIZER, make_task

__all__ = [
    "TRL_VERSION",
    "HUB_MODEL",
    "offline",
    "char_tokenizer",
    "tiny_llama",
    "LocalSetup",
    "local_setup",
    "hub_setup",
    "word_problems",
    "last_number_reward",
    "capturing_trainer_class",
    "Capture",
    "TrlRun",
    "run_trl",
    "recompute",
    "agreement",
    "advantage_check",
    "initial_model",
    "sampler_logps",
]

#: The release whose GRPOTrainer the presets and this module follow.
TRL_VERSION = "1.16.0"
#: The opt-in hub model of the chapter.
HUB_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

_OFFLINE = dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled",
                TOKENIZERS_PARALLELISM="false")


def offline() -> None:
    """Forbid every Hugging Face download in this process (the local path calls it)."""
    os.environ.update(_OFFLINE)


@contextlib.contextmanager
def _quiet():
    """No progress bars, no deprecation warnings from transformers and trl while inside."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _check_trl() -> None:
    import trl

    if trl.__version__.split("+")[0] != TRL_VERSION:
        raise ValueError(f"`trl` is {trl.__version__}; grpo_core's TRL presets follow trl=={TRL_VERSION} "
                         "(pip install -r requirements.txt).")


# ------------------------------------------------------------------------------------ models


def char_tokenizer(symbols: str | None = None):
    """A ``PreTrainedTokenizerFast`` with one token per character: ``<pad>`` = 0, ``<eos>`` = 1, then
    ``symbols`` (default: the book's tasks' ``0123456789+=>``, so ids match
    :data:`grpo_core.training.tasks.TOKENIZER`). No chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = TOKENIZER.SYMBOLS if symbols is None else symbols
    if len(set(symbols)) != len(symbols) or not symbols:
        raise ValueError(f"`symbols` must be distinct characters; got {symbols!r}.")
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(symbols)}, "<unk>": len(symbols) + 2}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def tiny_llama(vocab_size: int, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 4,
               max_positions: int = 64):
    """A freshly initialised ``LlamaForCausalLM`` (``layers`` decoder layers), in float32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=max_positions, pad_token_id=0, eos_token_id=1, bos_token_id=1,
                      tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


def _warm_up(model, task, steps: int, batch: int, lr: float, error_rate: float, seed: int) -> None:
    """Supervised steps on the task's demonstrations (prompt + imperfect answer), loss on the answer."""
    if steps == 0:
        return
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        ids = task.sample_ids(batch, g)
        prompt = task.prompts(ids)
        answer = task.demonstrations(ids, error_rate, g)
        x = torch.cat([prompt, answer], dim=1)
        labels = x.clone()
        labels[:, : prompt.shape[1]] = -100
        labels[x == TOKENIZER.pad_id] = -100
        loss = model(input_ids=x, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


@dataclass
class LocalSetup:
    """What :func:`run_trl` needs: a model path, its tokenizer, a dataset and the reward functions."""

    model_path: str
    tokenizer: object
    dataset: object
    reward_funcs: list
    max_completion_length: int
    task: object = None
    description: str = ""


def _task_reward(task):
    def task_reward(prompts, completions, completion_ids, problem_id, **kwargs):
        """The book's reward: 1 where the completion is exactly the answer followed by <eos>."""
        n = len(completion_ids)
        comp = torch.full((n, task.max_new_tokens), TOKENIZER.pad_id, dtype=torch.long)
        for i, ids in enumerate(completion_ids):
            ids = list(ids)[: task.max_new_tokens]
            comp[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return task.reward(torch.tensor(problem_id, dtype=torch.long), comp).tolist()

    return task_reward


def local_setup(task: str = "sort", *, n_digits: int = 3, n_prompts: int = 64, seed: int = 0,
                warmup_steps: int = 150, warmup_lr: float = 3e-3, error_rate: float = 0.5,
                directory: str | None = None, **model_kwargs) -> LocalSetup:
    """A tiny Llama for one of the book's tasks, saved to ``directory`` (a new temporary folder by
    default) so that TRL builds its reference model from the same path; offline.

    Args:
        task: ``"sort"`` (``n_digits`` digits) or ``"add"``.
        n_prompts: distinct training problems in the dataset (columns ``prompt``, ``problem_id``).
        warmup_steps, warmup_lr, error_rate: the supervised warm-up on demonstrations that are
            wrong with probability ``error_rate`` (0 steps: a random model, whose rewards are all 0).
        model_kwargs: :func:`tiny_llama`'s (``hidden``, ``layers``, ``heads``).
    """
    from datasets import Dataset

    offline()
    t = make_task(task, n_digits=n_digits) if task == "sort" else make_task(task)
    if n_prompts < 1:
        raise ValueError(f"`n_prompts` must be >= 1; got {n_prompts!r}.")
    if warmup_steps < 0:
        raise ValueError(f"`warmup_steps` must be >= 0; got {warmup_steps!r}.")
    tok = char_tokenizer()
    model = tiny_llama(len(tok), seed=seed, **model_kwargs)
    _warm_up(model, t, warmup_steps, 64, warmup_lr, error_rate, seed)
    directory = directory or tempfile.mkdtemp(prefix="grpo_trl_check_")
    with _quiet():
        model.save_pretrained(directory)
        tok.save_pretrained(directory)
    ids = torch.unique(t.sample_ids(4 * n_prompts, torch.Generator().manual_seed(seed + 1)))[:n_prompts]
    ids = ids[torch.randperm(ids.numel(), generator=torch.Generator().manual_seed(seed + 2))]
    prompts = [TOKENIZER.decode(p) for p in t.prompts(ids)]
    data = Dataset.from_dict({"prompt": prompts, "problem_id": ids.tolist()})
    return LocalSetup(directory, tok, data, [_task_reward(t)], t.max_new_tokens, t,
                      f"{t.name} task, tiny Llama ({model.config.num_hidden_layers} layers, "
                      f"{sum(p.numel() for p in model.parameters()):,} parameters)")


# ------------------------------------------------------------------------------------ the hub path


_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana")
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps")


def word_problems(n: int, *, seed: int = 0, conversational: bool = True) -> list[dict]:
    """``n`` GSM8K-style word problems with integer answers (two or three steps of arithmetic),
    generated here (no dataset download): ``{"prompt", "answer"}``. The prompt asks for the
    final number on the last line; conversational prompts are chat messages."""
    if n < 1:
        raise ValueError(f"`n` must be >= 1; got {n!r}.")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        who, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        a, b, c = rng.randint(7, 30), rng.randint(2, 20), rng.randint(2, 6)
        kind = rng.randrange(3)
        if kind == 0:
            text, ans = f"{who} has {a} {item} and buys {b} more, then gives away {c}. How many {item} now?", a + b - c
        elif kind == 1:
            text, ans = f"{who} buys {c} bags of {b} {item} each and already had {a}. How many {item} in all?", a + b * c
        else:
            text = f"{who} has {a * c} {item} and shares them equally among {c} friends, then finds {b} more. How many {item} does {who} have?"
            ans = a + b
        text += " Give the final number alone on the last line."
        prompt = [{"role": "user", "content": text}] if conversational else text + "\n"
        out.append({"prompt": prompt, "answer": str(ans)})
    return out


def last_number_reward(completions, answer, **kwargs):
    """1.0 where the last number in the completion equals ``answer`` (GSM8K's convention), else 0.0;
    completions may be strings or chat messages."""
    out = []
    for comp, ans in zip(completions, answer):
        text = comp[-1]["content"] if isinstance(comp, list) else comp
        nums = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
        out.append(1.0 if nums and float(nums[-1]) == float(ans) else 0.0)
    return out


def hub_setup(model: str = HUB_MODEL, *, n_prompts: int = 256, seed: int = 0,
              max_completion_length: int = 256) -> LocalSetup:
    """The opt-in path: a causal LM by hub id (downloaded by transformers, so only where the caller
    allows it) or a local folder, its tokenizer, and :func:`word_problems` with
    :func:`last_number_reward`. Prompts are chat messages when the tokenizer has a chat template."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    with _quiet():
        tok = AutoTokenizer.from_pretrained(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    rows = word_problems(n_prompts, seed=seed, conversational=tok.chat_template is not None)
    data = Dataset.from_list(rows)
    return LocalSetup(model, tok, data, [last_number_reward], max_completion_length, None,
                      f"{model}, generated word problems")


# ------------------------------------------------------------------------------------ capture


@dataclass
class Capture:
    """What TRL used for one micro-batch's loss (float32 tensors on the CPU)."""

    step: int  # optimizer step (TRL's state.global_step when the micro-batch ran)
    micro: int  # micro-batch index since the start of training
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    advantages: torch.Tensor
    logp: torch.Tensor  # TRL's per-token log pi_theta (its value; TRL differentiates through it)
    old: torch.Tensor | None  # inputs["old_per_token_logps"]; None: TRL used logp.detach()
    ref: torch.Tensor | None
    num_items_in_batch: int
    grad_accum_steps: int
    loss: float  # TRL's loss
    grad: torch.Tensor  # d TRL's loss / d logp

    @property
    def old_or_detached(self) -> torch.Tensor:
        return self.logp if self.old is None else self.old


def capturing_trainer_class():
    """A subclass of TRL's ``GRPOTrainer`` whose ``compute_loss`` records a :class:`Capture` per call
    in ``self.captures``. It changes nothing TRL computes: the loss it returns is TRL's."""
    from trl import GRPOTrainer

    class CapturingGRPOTrainer(GRPOTrainer):
        captures: list

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            seen = []

            def hook(module, args, kwargs, output):  # the policy forward of this loss
                seen.append(output)

            handle = model.register_forward_hook(hook, with_kwargs=True)
            try:
                loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                handle.remove()
            if not hasattr(self, "captures"):
                self.captures = []
            if len(seen) != 1 or getattr(seen[0], "log_probs", None) is None:
                raise RuntimeError("expected one policy forward with per-token log_probs inside TRL's compute_loss; "
                                   f"saw {len(seen)} (is trl=={TRL_VERSION} installed?)")
            k = inputs["completion_ids"].shape[1]
            full = seen[0].log_probs
            (g,) = torch.autograd.grad(loss, full, retain_graph=True, allow_unused=True)
            g = torch.zeros_like(full) if g is None else g

            def keep(x):
                return None if x is None else x.detach().float().cpu().clone()

            self.captures.append(Capture(
                step=int(self.state.global_step), micro=len(self.captures),
                prompt_ids=keep(inputs["prompt_ids"]).long(), prompt_mask=keep(inputs["prompt_mask"]).long(),
                completion_ids=keep(inputs["completion_ids"]).long(),
                completion_mask=keep(inputs["completion_mask"]).long(),
                advantages=keep(inputs["advantages"]), logp=keep(full[:, -k:]),
                old=keep(inputs.get("old_per_token_logps")), ref=keep(inputs.get("ref_per_token_logps")),
                num_items_in_batch=int(inputs["num_items_in_batch"]),
                grad_accum_steps=int(self.current_gradient_accumulation_steps),
                loss=float(loss.detach()), grad=keep(g[:, -k:])))
            return loss

    return CapturingGRPOTrainer


@dataclass
class TrlRun:
    """A finished :func:`run_trl`: the trainer, its config and the captures."""

    loss_type: str
    trainer: object
    args: object
    captures: list = field(default_factory=list)
    rewards: list = field(default_factory=list)  # every reward the reward function returned, in order
    scored: list = field(default_factory=list)  # (prompt, completion ids, reward), in the order TRL scored them
    seconds: float = 0.0

    @property
    def model(self):
        return self.trainer.model


def run_trl(setup: LocalSetup, loss_type: str = "dapo", *, max_steps: int = 2, num_generations: int = 4,
            per_device_train_batch_size: int = 8, gradient_accumulation_steps: int = 2, num_iterations: int = 2,
            beta: float = 0.04, learning_rate: float = 3e-3, seed: int = 0, device: str = "cpu",
            output_dir: str | None = None, **config) -> TrlRun:
    """Train TRL's ``GRPOTrainer`` (the capturing subclass) for ``max_steps`` optimizer steps.

    Defaults: 8 answers per micro-batch (2 prompts x G = 4), 2 micro-batches per optimizer step,
    each generation reused for ``num_iterations`` = mu = 2 passes, beta = 0.04 (so TRL builds its
    reference model and the KL term acts), no logging, no checkpoint. ``config``: any other
    ``GRPOConfig`` field (``steps_per_generation``, ``epsilon``, ``scale_rewards``, ``bf16``, ...).
    ``device="cuda"`` for the hub path.
    """
    import time

    from trl import GRPOConfig

    _check_trl()
    if device not in ("cpu", "cuda"):
        raise ValueError(f"`device` must be 'cpu' or 'cuda'; got {device!r}.")
    rewards, scored = [], []
    funcs = []
    for f in setup.reward_funcs:
        def recorded(prompts, completions, completion_ids, _f=f, **kwargs):
            out = _f(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
            rewards.extend(out)
            if len(setup.reward_funcs) == 1:
                scored.extend((p, tuple(int(i) for i in c), float(r)) for p, c, r in zip(prompts, completion_ids, out))
            return out

        recorded.__name__ = f.__name__
        funcs.append(recorded)
    kw = dict(output_dir=output_dir or tempfile.mkdtemp(prefix="grpo_trl_out_"), use_cpu=device == "cpu",
              report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=1, seed=seed,
              max_steps=max_steps, num_generations=num_generations,
              per_device_train_batch_size=per_device_train_batch_size,
              gradient_accumulation_steps=gradient_accumulation_steps, num_iterations=num_iterations, beta=beta,
              learning_rate=learning_rate, max_completion_length=setup.max_completion_length, loss_type=loss_type,
              lr_scheduler_type="constant", warmup_steps=0, dataloader_num_workers=0)
    if device == "cpu":
        kw["bf16"] = False
    kw.update(config)
    from transformers import PrinterCallback

    with _quiet():
        args = GRPOConfig(**kw)
        cls = capturing_trainer_class()
        trainer = cls(model=setup.model_path, reward_funcs=funcs, args=args, train_dataset=setup.dataset,
                      processing_class=setup.tokenizer)
        trainer.remove_callback(PrinterCallback)  # TRL's metrics stay in trainer.state.log_history
        trainer.captures = []
        t0 = time.perf_counter()
        trainer.train()
    return TrlRun(loss_type, trainer, args, trainer.captures, rewards, scored, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------ recompute


def _preset_keywords(run: TrlRun, cap: Capture, *, normaliser: str = "trl", ga: int | None = None,
                     loss_type: str | None = None) -> dict:
    """grpo_core keywords of preset ``trl-<loss_type>`` for one micro-batch of ``run``."""
    lt, args = loss_type or run.loss_type, run.args
    ov = {}
    if args.beta != 0.0:
        ov["beta"] = args.beta
    if lt != "sapo" and lt != "cispo":
        if args.epsilon != 0.2:
            ov["eps_low"] = args.epsilon
        if args.epsilon_high is not None and args.epsilon_high != args.epsilon:
            ov["eps_high"] = args.epsilon_high
        if args.delta is not None:
            ov["delta"] = args.delta
    elif lt == "cispo" and args.epsilon_high not in (None, 0.2):
        ov["eps_high"] = args.epsilon_high - 1.0
    ga = cap.grad_accum_steps if ga is None else ga
    if lt in ("grpo", "bnpo", "dr_grpo", "sapo"):
        if ga != 1:
            ov["grad_accum_steps"] = ga
        if lt == "dr_grpo":
            ov["max_len"] = args.max_completion_length
    elif lt in ("dapo", "cispo"):
        n = cap.num_items_in_batch * ga / args.steps_per_generation
        if normaliser == "trl":
            if n != int(n):
                raise ValueError("num_items_in_batch x gradient_accumulation_steps / steps_per_generation is not an "
                                 "integer; the preset takes an integer token count")
            ov["num_items_in_batch"] = int(n)
    return ov


def recompute(run: TrlRun, cap: Capture, *, preset: str | None = None, std: str | None = None,
              old: str = "trl", kl: str = "trl", normaliser: str = "trl", ga: int | None = None,
              **overrides) -> dict:
    """grpo_core's loss and gradient for one captured micro-batch, and their max differences from TRL's.

    Float64, from the captured values. The default reproduces TRL's conventions; each option
    replaces one by a wrong one (what it costs, on the same tensors):

    - ``std``: ``None`` (TRL's advantages as captured) or ``"population"`` (divided by the
      population std instead of TRL's sample std: TRL's advantages times ``sqrt(G / (G - 1))``);
    - ``old``: ``"detached"`` (ratio 1: a trainer that ignores that this micro-batch is a later
      pass, mu > 1), or a tensor of log-probs to use as pi_old (e.g. a sampler's);
    - ``kl``: ``"reward"`` (beta x the KL moved into the reward instead of the loss: here, its
      gradient is dropped from the loss);
    - ``normaliser``: ``"micro"`` (dapo/cispo normalised by the micro-batch's own tokens, not the
      generation batch's);
    - ``ga``: the accumulation steps the loss is divided by (number of minibatches);
    - ``preset``: another preset name (another loss_type); ``overrides``: grpo_core keywords.
    """
    name = preset or f"trl-{run.loss_type}"
    if not name.startswith("trl-"):
        raise ValueError(f"`preset` must be a TRL preset (trl-<loss_type>); got {preset!r}.")
    ov = _preset_keywords(run, cap, normaliser=normaliser, ga=ga, loss_type=name[len("trl-"):])
    d = torch.float64
    mask = cap.completion_mask.to(d)
    adv = cap.advantages.to(d)
    if std == "population":
        G = run.args.num_generations
        # TRL divides by the sample std s; the population std is s sqrt((G - 1) / G), so each advantage
        # grows by sqrt(G / (G - 1)) (exactly, up to the 1e-4 added to the denominator)
        adv = adv * math.sqrt(G / (G - 1))
    elif std is not None:
        raise ValueError(f"`std` must be None or 'population'; got {std!r}.")
    if not isinstance(old, torch.Tensor) and old not in ("trl", "detached"):
        raise ValueError(f"`old` must be 'trl', 'detached' or a [B, T] tensor of log-probs; got {old!r}.")
    if kl not in ("trl", "reward"):
        raise ValueError(f"`kl` must be 'trl' or 'reward'; got {kl!r}.")
    if normaliser not in ("trl", "micro"):
        raise ValueError(f"`normaliser` must be 'trl' or 'micro'; got {normaliser!r}.")
    if kl == "reward":
        ov.pop("beta", None)
        ov["beta"] = 0.0
    ov.update(overrides)
    ov = {k: (v.to(d) if isinstance(v, torch.Tensor) else v) for k, v in ov.items()}
    leaf = cap.logp.to(d).clone().requires_grad_(True)
    if isinstance(old, torch.Tensor):
        old_lp = old.to(d)
    else:
        old_lp = leaf.detach() if old == "detached" else cap.old_or_detached.to(d)
    ref = None if cap.ref is None else cap.ref.to(d)
    loss, metrics = preset_loss(name, leaf, old_lp, ref, adv, mask, **ov)
    (g,) = torch.autograd.grad(loss, leaf, allow_unused=True)
    g = torch.zeros_like(leaf) if g is None else g
    real = mask > 0
    loss = float(loss.detach())
    return dict(loss=loss, trl_loss=cap.loss, loss_diff=abs(loss - cap.loss),
                grad_diff=float((g - cap.grad.to(d))[real].abs().max()) if real.any() else 0.0,
                grad_scale=float(cap.grad[real].abs().max()) if real.any() else 0.0, metrics=metrics)


def agreement(run: TrlRun, **options) -> dict:
    """Max over the run's captured micro-batches of :func:`recompute`'s differences."""
    rows = [recompute(run, cap, **options) for cap in run.captures]
    if not rows:
        raise ValueError("`run` has no captured micro-batch (max_steps=0?)")
    return dict(micro_batches=len(rows), loss_diff=max(r["loss_diff"] for r in rows),
                grad_diff=max(r["grad_diff"] for r in rows), grad_scale=max(r["grad_scale"] for r in rows),
                loss_scale=max(abs(r["trl_loss"]) for r in rows))


def advantage_check(run: TrlRun, tokenizer, preset: str = "trl") -> float:
    """Max |TRL's captured advantage - :func:`grpo_core.preset_advantages` (``preset``, applied to
    each group of G rewards)| over the run's captures, the groups rebuilt from the order TRL scored its completions (G consecutive
    answers per prompt) and each captured row found by its prompt and completion (TRL shuffles the
    generation batch before it splits it; a pair scored in two generations may carry either
    advantage, and the nearer one counts). String prompts only."""
    from ..advantages import preset_advantages

    G = run.args.num_generations
    if not run.scored or len(run.scored) % G:
        raise ValueError("`run` has no scored completions in whole groups (several reward functions?)")
    table = {}
    for k in range(0, len(run.scored), G):
        group = run.scored[k:k + G]
        if not all(isinstance(p, str) for p, _, _ in group):
            raise ValueError("advantage_check needs string prompts (chat prompts are rendered by a template)")
        adv = preset_advantages(torch.tensor([r for _, _, r in group], dtype=torch.float64), G, preset)
        for (p, c, _), a in zip(group, adv.tolist()):
            table.setdefault((p, c), []).append(a)
    worst = 0.0
    for cap in run.captures:
        for i in range(cap.completion_ids.shape[0]):
            prompt = tokenizer.decode(cap.prompt_ids[i][cap.prompt_mask[i] > 0].tolist())
            comp = tuple(cap.completion_ids[i][cap.completion_mask[i] > 0].tolist())
            found = table.get((prompt, comp))
            if not found:
                raise ValueError(f"captured completion {comp} of prompt {prompt!r} was never scored")
            worst = max(worst, min(abs(a - float(cap.advantages[i])) for a in found))
    return worst


# ------------------------------------------------------------------------------------ the sampler


def initial_model(setup: LocalSetup):
    """The model of ``setup`` as it was before training (the policy that sampled TRL's first
    generation), loaded from its folder."""
    from transformers import AutoModelForCausalLM

    with _quiet():
        return AutoModelForCausalLM.from_pretrained(setup.model_path)


def sampler_logps(model, cap: Capture, *, temperature: float = 1.0, dtype=torch.float32, noise: float = 0.0,
                  seed: int = 0) -> torch.Tensor:
    """Log-probabilities of ``cap``'s completion tokens under a sampler that differs from the trainer:
    a copy of ``model`` with Gaussian noise of relative size ``noise`` on every weight, run in
    ``dtype`` (e.g. ``torch.bfloat16``), its logits divided by ``temperature``. ``[B, T]`` float32,
    0 at padding. With the defaults it is the trainer's own pi_old (up to float rounding)."""
    import copy

    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0; got {temperature!r}.")
    if noise < 0:
        raise ValueError(f"`noise` must be >= 0; got {noise!r}.")
    m = copy.deepcopy(model).to("cpu")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if noise > 0:
            for p in m.parameters():
                p.add_(torch.randn(p.shape, generator=g) * noise * p.abs().mean())
        m = m.to(dtype).eval()
        ids = torch.cat([cap.prompt_ids, cap.completion_ids], dim=1)
        att = torch.cat([cap.prompt_mask, cap.completion_mask], dim=1)
        logits = m(input_ids=ids, attention_mask=att).logits.float()
        k = cap.completion_ids.shape[1]
        logits = logits[:, -k - 1:-1] / temperature
        lp = torch.log_softmax(logits, dim=-1).gather(-1, cap.completion_ids[..., None])[..., 0]
    return torch.where(cap.completion_mask > 0, lp, torch.zeros_like(lp))
