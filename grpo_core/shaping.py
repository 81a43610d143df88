"""Reward shaping and batch filtering of DAPO (Yu et al. 2025), as small functions a trainer calls.

- :func:`overlong_penalty`: the soft length penalty added to the task reward (DAPO Eq. 13);
- :func:`truncated`: answers cut at the length limit, which DAPO leaves out of the loss;
- :func:`dynamic_sampling_keep`: DAPO's dynamic-sampling test, the groups that carry a gradient
  (the resampling loop belongs to the trainer).
"""

from __future__ import annotations

import torch

from ._checks import ArgumentTypeError, as_float_tensor, as_grouped, as_mask, check_finite, check_int, check_nonneg_number

__all__ = ["overlong_penalty", "truncated", "dynamic_sampling_keep"]


def overlong_penalty(lengths, max_len: int, cache_len: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment, added to the task reward (Yu et al. 2025, Eq. 13)::

        0                                    if L <= max_len - cache_len
        factor * ((max_len - cache_len) - L) / cache_len   if max_len - cache_len < L <= max_len
        -factor                              if L > max_len

    ``lengths`` ``[N]`` in tokens; ``cache_len`` the width of the ramp (verl's
    ``overlong_buffer.len``), ``factor`` its depth (verl's ``overlong_buffer.penalty_factor``).
    """
    length = as_float_tensor(lengths, "lengths")
    check_finite(length, "lengths")
    check_int(max_len, "max_len")
    check_int(cache_len, "cache_len")
    if cache_len > max_len:
        raise ValueError(f"`cache_len`={cache_len} must be <= max_len={max_len}.")
    factor = check_nonneg_number(factor, "factor")
    start = max_len - cache_len
    ramp = (start - length) / cache_len
    out = torch.where(length <= start, torch.zeros_like(length), ramp)
    return factor * torch.where(length > max_len, torch.full_like(length, -1.0), out)


def truncated(completions, mask, eos_id: int) -> torch.Tensor:
    """``[N]`` bool: answers with no end token among their tokens (cut at the length limit).

    ``completions`` ``[N, T]`` token ids (integers), ``mask`` ``[N, T]`` 0/1, ``eos_id`` an int >= 0."""
    if completions is None:
        raise ArgumentTypeError("`completions` is None; pass the [N, T] token ids of the answers.")
    c = completions if isinstance(completions, torch.Tensor) else as_float_tensor(completions, "completions")
    m = mask if isinstance(mask, torch.Tensor) else as_float_tensor(mask, "mask")
    if c.shape != m.shape or c.dim() != 2:
        raise ValueError(f"`completions` {tuple(c.shape)} and `mask` {tuple(m.shape)} must be the same [N, T] shape.")
    if c.is_complex() or c.dtype == torch.bool or (c.is_floating_point() and not bool((c == c.round()).all())):
        raise ValueError(f"`completions` must hold integer token ids; got dtype {c.dtype} with non-integer values.")
    check_int(eos_id, "eos_id", 0, " (the end-of-answer token id)")
    m = as_mask(m, torch.empty(tuple(c.shape))).bool()
    return ~((c == eos_id) & m).any(dim=1)


def dynamic_sampling_keep(rewards, group_size: int) -> torch.Tensor:
    """DAPO's dynamic sampling filter: a bool per group, True where the rewards are not all equal.

    DAPO (Yu et al. 2025, section 3.2) drops the groups whose answers all got the same reward and
    samples more prompts until the batch is full of groups that carry a gradient; the resampling
    loop belongs to the trainer, this is the test it applies.
    """
    grouped, _ = as_grouped(rewards, group_size)
    return grouped.amax(dim=1) != grouped.amin(dim=1)
