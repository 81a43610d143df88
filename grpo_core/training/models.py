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

__all__ = ["ModelConfig", "TinyGPT", "ValueHead", "generate", "token_logprobs", "completion_logprobs", "sequence_logprob", "all_completions"]


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

    def forward(self, x: torch.Tensor, past=None, attn_mask=None):
        """Without ``past``: causal self-attention over ``x``. With ``past = (k, v)`` (the cached keys
        and values of the earlier positions) ``x`` continues them: one position attends to all of
        them; several need ``attn_mask`` (which keys each query sees). Returns ``(x, (k, v))``
        with this call's positions appended to the cache."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            if t == 1:
                att = F.scaled_dot_product_attention(q, k, v)
            else:  # plain attention: for these few positions faster than the fused kernel with a mask
                scores = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
                att = scores.masked_fill(~attn_mask, float("-inf")).softmax(-1) @ v
        else:
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x)), (k, v)


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
            x, _ = block(x)
        h = self.ln_f(x)
        logits = h @ self.tok.weight.T
        return (logits, h) if return_hidden else logits

    def forward_cached(self, tokens: torch.Tensor, past: list | None = None):
        """Logits of ``tokens`` ``[N, T]`` that continue the positions cached in ``past`` (None: they
        start at position 0), and the cache extended by them: ``(logits [N, T, V], past)``.

        ``past`` is one ``(keys, values)`` pair ``[N, heads, L, d_head]`` per block. Feeding a
        sequence in pieces gives the logits of one full :meth:`forward` up to float rounding (the
        attention kernels differ; the linear layers are row by row the same).
        """
        n, t = tokens.shape
        start = 0 if past is None else past[0][0].shape[2]
        if start + t > self.cfg.max_len:
            raise ValueError(f"`tokens` reach length {start + t} > max_len={self.cfg.max_len}; raise ModelConfig.max_len.")
        x = self.tok(tokens) + self.pos(torch.arange(start, start + t, device=tokens.device))
        mask = None
        if past is not None and t > 1:  # query i (position start + i) sees keys 0 .. start + i
            mask = (torch.arange(start + t, device=tokens.device)[None, :]
                    <= torch.arange(start, start + t, device=tokens.device)[:, None])
        present = []
        for k, block in enumerate(self.blocks):
            x, kv = block(x, None if past is None else past[k], mask)
            present.append(kv)
        logits = self.ln_f(x) @ self.tok.weight.T
        return logits, present

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


def _shared_rows(prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distinct, index)`` with ``distinct[index] == prompts``, merging runs of equal consecutive
    rows (the G copies of a prompt that the trainer lays side by side); cheaper than ``torch.unique``."""
    new = torch.ones(prompts.shape[0], dtype=torch.bool, device=prompts.device)
    new[1:] = (prompts[1:] != prompts[:-1]).any(dim=1)
    return prompts[new], new.cumsum(0) - 1


def _expand_past(past: list, index: torch.Tensor) -> list:
    return [(k.index_select(0, index), v.index_select(0, index)) for k, v in past]


def generate(
    model: TinyGPT,
    prompts: torch.Tensor,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    kv_cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one completion per prompt row, all rows at once.

    Returns ``(completions [N, C], mask [N, C], logprobs [N, C])`` with ``C = max_new_tokens``:
    tokens after an end token are ``pad_id`` with mask 0; the end token itself is part of the
    completion (mask 1), so the policy learns when to stop. ``logprobs`` are those of the sampling
    distribution (temperature applied), 0 on padding. ``temperature = 0`` means greedy decoding.

    With ``kv_cache`` (default) each new token runs through the model once, against the cached
    keys and values of the earlier positions (:meth:`TinyGPT.forward_cached`), and identical
    prompt rows (a group of G) are encoded once; ``kv_cache=False`` recomputes the whole sequence
    for every token. Both draw the same random numbers, so they sample the same tokens except
    where float rounding of the attention (about 1e-7) moves a draw across a boundary.
    """
    with torch.inference_mode():  # a little cheaper than no_grad; copies of the results leave it
        out = _sample(model, prompts, max_new_tokens, eos_id, pad_id, temperature, generator, kv_cache)
    return tuple(t.clone() for t in out)


def _sample(model, prompts, max_new_tokens, eos_id, pad_id, temperature, generator, kv_cache):
    n = prompts.shape[0]
    seq = prompts
    done = torch.zeros(n, dtype=torch.bool, device=prompts.device)
    tokens, masks, logps = [], [], []
    if kv_cache and max_new_tokens > 0:
        uniq, inverse = _shared_rows(prompts)
        logits, past = model.forward_cached(uniq)
        logits = logits[:, -1].index_select(0, inverse)
        past = _expand_past(past, inverse)
    for step in range(max_new_tokens):
        if not kv_cache:
            logits = model(seq)[:, -1]
        logits = logits.float()
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
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        if kv_cache:
            logits, past = model.forward_cached(nxt[:, None], past)
            logits = logits[:, -1]
        else:
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    pad = max_new_tokens - len(tokens)
    comp = torch.stack(tokens, 1)
    mask = torch.stack(masks, 1)
    logp = torch.stack(logps, 1)
    if pad:
        comp = F.pad(comp, (0, pad), value=pad_id)
        mask = F.pad(mask, (0, pad), value=False)
        logp = F.pad(logp, (0, pad), value=0.0)
    return comp, mask, logp


def completion_logprobs(
    model: TinyGPT,
    prompts: torch.Tensor,
    completions: torch.Tensor,
    temperature: float = 1.0,
    *,
    length: int | None = None,
    entropy: bool = False,
):
    """:func:`token_logprobs` computed faster, for the trainer: ``[N, C]`` (and, with
    ``entropy=True``, the entropy of each position's distribution ``[N, C]``, without gradient).

    Identical prompt rows (the G answers of a group) go through the model once, their keys and
    values shared by the completions (:meth:`TinyGPT.forward_cached`; the gradient sums over the
    group); only the first ``length`` completion columns are computed (default all; the trainer
    passes the longest answer of the batch) and the rest come back as 0. Equal to
    :func:`token_logprobs` up to float rounding (1e-6 to 1e-5).
    """
    c = completions.shape[1]
    length = c if length is None else max(1, min(int(length), c))
    comp = completions[:, :length]
    uniq, inverse = _shared_rows(prompts)
    logits, past = model.forward_cached(uniq)
    first = logits[:, -1:].index_select(0, inverse)
    if length > 1:
        rest, _ = model.forward_cached(comp[:, :-1], _expand_past(past, inverse))
        logits = torch.cat([first, rest], dim=1)
    else:
        logits = first
    logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    out = logp_all.gather(-1, comp[..., None]).squeeze(-1)
    if length < c:
        out = F.pad(out, (0, c - length), value=0.0)
    if not entropy:
        return out
    with torch.no_grad():
        ent = -(logp_all.exp() * logp_all).sum(-1)
        if length < c:
            ent = F.pad(ent, (0, c - length), value=0.0)
    return out, ent
