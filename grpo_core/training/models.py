"""A small causal language model, defined here so the trainer needs no download of any kind.

:class:`TinyGPT` is a decoder-only transformer (token and position embeddings, pre-norm blocks of
causal self-attention and an MLP, a tied output layer), sized by :class:`ModelConfig`. It is the
policy, the reference model and, with :class:`ValueHead`, PPO's critic in the trainer chapter.
:func:`generate` samples completions for a batch of prompts at once and returns the tokens, the
completion mask and the sampling log-probabilities; :func:`token_logprobs` recomputes the
log-probabilities of given completions under any model (pi_theta, pi_old, pi_ref).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import check_int

__all__ = ["ModelConfig", "TinyGPT", "ValueHead", "generate", "token_logprobs", "sequence_logprob", "all_completions"]


@dataclass(frozen=True)
class ModelConfig:
    """Size of a :class:`TinyGPT`. ``max_len`` bounds prompt plus completion length."""

    vocab_size: int
    max_len: int = 32
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_mult: int = 4

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "d_model", "n_layers", "n_heads", "mlp_mult"):
            check_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(f"`d_model`={self.d_model} must be a multiple of `n_heads`={self.n_heads}.")


class _Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_mult * cfg.d_model),
            nn.GELU(),
            nn.Linear(cfg.mlp_mult * cfg.d_model, cfg.d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """Decoder-only transformer: ``forward(tokens [N, T]) -> logits [N, T, vocab]``.

    Position ``t``'s logits predict token ``t + 1``. With ``return_hidden=True`` the final hidden
    states ``[N, T, d_model]`` come back too (for a value head).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor, return_hidden: bool = False):
        n, t = tokens.shape
        if t > self.cfg.max_len:
            raise ValueError(f"`tokens` has length {t} > max_len={self.cfg.max_len}; raise ModelConfig.max_len.")
        x = self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        h = self.ln_f(x)
        logits = h @ self.tok.weight.T
        return (logits, h) if return_hidden else logits

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ValueHead(nn.Module):
    """PPO's critic: a :class:`TinyGPT` body of its own plus a linear map to one value per position."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.body = TinyGPT(cfg)
        self.head = nn.Linear(cfg.d_model, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, h = self.body(tokens, return_hidden=True)
        return self.head(h).squeeze(-1)


def token_logprobs(model: nn.Module, prompts: torch.Tensor, completions: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log pi(completion token t | prompt, earlier completion tokens)`` under ``model``: ``[N, C]``.

    ``prompts`` ``[N, P]`` and ``completions`` ``[N, C]``; padding positions of the completion get
    values too (mask them downstream). ``temperature`` must match the one used for sampling, so
    that these are the log-probabilities of the distribution the tokens were drawn from.
    """
    seq = torch.cat([prompts, completions], dim=1)
    logits = model(seq[:, :-1])[:, prompts.shape[1] - 1 :] / temperature
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, completions[..., None]).squeeze(-1)


def sequence_logprob(model: nn.Module, prompts: torch.Tensor, completions: torch.Tensor, mask, temperature: float = 1.0) -> torch.Tensor:
    """``log pi(completion | prompt)`` ``[N]``: the sum of :func:`token_logprobs` over the
    completion's tokens (seed 6.1: the sequence probability is the product of the token ones)."""
    m = torch.as_tensor(mask).to(completions.device)
    if m.shape != completions.shape:
        raise ValueError(f"`mask` has shape {tuple(m.shape)}; it must match `completions` {tuple(completions.shape)}.")
    return (token_logprobs(model, prompts, completions, temperature) * m.float()).sum(dim=1)


def all_completions(vocab_size: int, max_new_tokens: int, eos_id: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every completion :func:`generate` can return, as ``(completions [M, C], mask [M, C])``.

    A completion is k non-end tokens followed by the end token (k < C), or C non-end tokens cut
    at the limit. These events partition what sampling can produce, so the probabilities of the
    M rows sum to 1 under any model. ``M = sum_k (V-1)^k`` for k up to C; keep it small.
    """
    check_int(vocab_size, "vocab_size", 2)
    check_int(max_new_tokens, "max_new_tokens")
    others = torch.tensor([t for t in range(vocab_size) if t != eos_id])
    count = sum(len(others) ** k for k in range(max_new_tokens + 1))
    if count > 2_000_000:
        raise ValueError(f"`max_new_tokens`={max_new_tokens} gives {count} completions; use a shorter limit.")
    comps, masks = [], []
    for k in range(max_new_tokens + 1):
        body = torch.cartesian_prod(*([others] * k)).reshape(-1, k) if k else torch.empty(1, 0, dtype=torch.long)
        n = body.shape[0]
        tail = [torch.full((n, 1), eos_id)] if k < max_new_tokens else []
        comp = torch.cat([body] + tail + [torch.full((n, max_new_tokens - k - len(tail)), pad_id)], dim=1)
        mask = torch.arange(max_new_tokens)[None, :] < k + len(tail)
        comps.append(comp)
        masks.append(mask.expand(n, -1))
    return torch.cat(comps), torch.cat(masks)


@torch.no_grad()
def generate(
    model: TinyGPT,
    prompts: torch.Tensor,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one completion per prompt row, all rows at once.

    Returns ``(completions [N, C], mask [N, C], logprobs [N, C])`` with ``C = max_new_tokens``:
    tokens after an end token are ``pad_id`` with mask 0; the end token itself is part of the
    completion (mask 1), so the policy learns when to stop. ``logprobs`` are those of the sampling
    distribution (temperature applied), 0 on padding. ``temperature = 0`` means greedy decoding.
    """
    n = prompts.shape[0]
    seq = prompts
    done = torch.zeros(n, dtype=torch.bool, device=prompts.device)
    tokens, masks, logps = [], [], []
    for _ in range(max_new_tokens):
        logits = model(seq)[:, -1].float()
        if temperature == 0:
            nxt = logits.argmax(-1)
            logp = torch.zeros(n, device=prompts.device)
        else:
            logprob_all = torch.log_softmax(logits / temperature, -1)
            nxt = torch.multinomial(logprob_all.exp(), 1, generator=generator).squeeze(-1)
            logp = logprob_all.gather(-1, nxt[:, None]).squeeze(-1)
        live = ~done
        nxt = torch.where(live, nxt, torch.full_like(nxt, pad_id))
        tokens.append(nxt)
        masks.append(live)
        logps.append(torch.where(live, logp, torch.zeros_like(logp)))
        done = done | (nxt == eos_id)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        if bool(done.all()):
            break
    pad = max_new_tokens - len(tokens)
    comp = torch.stack(tokens, 1)
    mask = torch.stack(masks, 1)
    logp = torch.stack(logps, 1)
    if pad:
        comp = F.pad(comp, (0, pad), value=pad_id)
        mask = F.pad(mask, (0, pad), value=False)
        logp = F.pad(logp, (0, pad), value=0.0)
    return comp, mask, logp
