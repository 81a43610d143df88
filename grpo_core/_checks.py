"""Input checks shared by every public function: the only validators of grpo_core.

Each check raises ``ValueError`` whose message names the argument and says how to fix it,
so a reader who passes the wrong thing learns what was expected instead of getting a
broadcasting surprise or a NaN three functions later.
"""

from __future__ import annotations

import math
import numbers

import torch


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (None where a tensor is expected, a list where a name is).

    Both a ``TypeError`` (what it is) and a ``ValueError`` (what every other check of grpo_core
    raises), so ``except ValueError`` catches every bad argument."""


def as_float_tensor(x, name: str) -> torch.Tensor:
    """Turn ``x`` (tensor, list, NumPy array) into a floating-point tensor.

    Integer and boolean inputs become the default float dtype; floating tensors keep their
    dtype and device.
    """
    if isinstance(x, torch.Tensor):
        t = x
    elif x is None:
        raise ArgumentTypeError(f"`{name}` is None; pass a tensor (or a list of numbers).")
    elif isinstance(x, (str, bytes, dict, set)):
        raise ArgumentTypeError(f"`{name}` must be a tensor or a list of numbers; got {type(x).__name__} {x!r:.40}.")
    else:
        try:
            t = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError, OverflowError) as err:
            raise ArgumentTypeError(
                f"`{name}` must be a tensor or a list of numbers; got {type(x).__name__} ({err})."
            ) from None
    if not (t.is_floating_point()):
        if t.is_complex():
            raise ValueError(f"`{name}` must be real-valued; got a complex tensor.")
        t = t.to(torch.get_default_dtype())
    return t


def _raise_at_first(t: torch.Tensor, bad: torch.Tensor, name: str, rule: str) -> None:
    """Raise a ValueError naming ``name``, the first bad value of ``t`` and its index, then ``rule``."""
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"`{name}` contains {t[idx].item()} at index {idx}{rule}")


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise if ``t`` holds NaN or +-inf, saying where the first bad value is."""
    _raise_at_first(t, ~torch.isfinite(t), name,
                    "; every value must be finite. Fix the value upstream (a reward function that returned "
                    "NaN, a log-probability of a token with zero probability, or a padding position not "
                    "filled with 0).")


def check_finite_at(t: torch.Tensor, real: torch.Tensor, name: str) -> None:
    """Like :func:`check_finite`, but only where ``real`` (a bool tensor of ``t``'s shape, or one
    that broadcasts to it) is True: a padding position may hold anything, it never reaches a result."""
    _raise_at_first(t, ~torch.isfinite(t) & real, name,
                    ", a position the mask marks as a real token; every value there must be finite "
                    "(padding positions may hold anything). Fix the value upstream (a log-probability "
                    "of a token with zero probability, a reward function that returned NaN).")


def check_overflow(t: torch.Tensor, name: str, what: str) -> None:
    """Raise if a result ``t`` computed from finite inputs overflowed (inf or NaN); ``name`` is the
    argument that made it too large and ``what`` says how to fix it."""
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        where = f" at index {tuple(int(i) for i in torch.nonzero(bad)[0])}" if t.dim() else ""
        value = t.detach()[bad][0].item()
        raise ValueError(f"`{name}` makes the result overflow {t.dtype}{where} (it is {value}): {what}")


def check_nonempty_batch(t: torch.Tensor, name: str) -> None:
    """``t`` is ``[B, ...]`` with B >= 1: an empty batch has no mean to take."""
    if t.dim() == 0 or t.shape[0] == 0:
        raise ValueError(
            f"`{name}` has shape {tuple(t.shape)}: an empty batch (B = 0 answers) has no loss to average; "
            f"skip the step, or pass at least one answer."
        )


def check_group_size(group_size, name: str = "group_size") -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise ArgumentTypeError(f"`{name}` must be an int (the number of answers per prompt, G); got {group_size!r}.")
    if group_size < 2:
        raise ValueError(
            f"`{name}` must be at least 2: a group of one answer has no spread to compare against "
            f"(got {group_size}). Sample G >= 2 answers per prompt."
        )
    return group_size


def check_int(value, name: str, minimum: int = 1, hint: str = "") -> int:
    """``value`` must be an int (not a bool) of at least ``minimum``; ``hint`` says what it is."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"`{name}` must be an int >= {minimum}{hint}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}{hint}; got {value!r}.")
    return int(value)


def check_same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"`{b_name}` has shape {tuple(b.shape)} but `{a_name}` has shape {tuple(a.shape)}; "
            f"they must match (one value per token)."
        )


def check_choice(value, name: str, choices) -> None:
    """``value`` is one of ``choices`` (names); a list or None where a name is expected is a type error."""
    try:
        known = value in choices
    except TypeError:  # unhashable: a list or a dict where a name is expected
        known = False
    if known:
        return
    names = sorted(choices, key=str)
    if not isinstance(value, str) and all(isinstance(c, str) for c in choices):
        raise ArgumentTypeError(f"`{name}` must be a name (a str), one of {names}; got {type(value).__name__} {value!r}.")
    raise ValueError(f"`{name}`={value!r} is not known; choose one of {names}.")


def check_nonneg_number(value, name: str, what: str = "") -> float:
    """A finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"`{name}` must be a number{what}; got {value!r}.")
    v = float(value)
    if not (v >= 0.0) or v == float("inf"):
        raise ValueError(f"`{name}` must be a finite number >= 0{what}; got {value!r}.")
    return v


def check_clip_range(eps_low, eps_high) -> tuple[float, float]:
    """The clip range ``(eps_low, eps_high)`` of the ratio; ``eps_high`` None means ``eps_low``."""
    lo = check_nonneg_number(eps_low, "eps_low")
    hi = lo if eps_high is None else check_nonneg_number(eps_high, "eps_high")
    if lo > 1.0:
        raise ValueError(f"`eps_low` must be <= 1 (the ratio is clipped below at 1 - eps_low >= 0); got {eps_low}.")
    return lo, hi


def as_mask(mask, like: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A 0/1 mask of the same shape as ``like``, returned in ``like``'s dtype."""
    m = mask if isinstance(mask, torch.Tensor) else as_float_tensor(mask, name)
    if m.is_complex():
        raise ValueError(f"`{name}` must hold only 0 and 1 (or True/False); got a complex tensor.")
    if m.shape != like.shape:
        raise ValueError(
            f"`{name}` has shape {tuple(m.shape)} but the values have shape {tuple(like.shape)}; "
            f"pass one 0/1 entry per token (1 = a real completion token, 0 = padding)."
        )
    if m.dtype != torch.bool:
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"`{name}` must hold only 0 and 1 (or True/False); use a bool tensor.")
    return m.to(device=like.device, dtype=like.dtype)


def check_real(value, name: str, what: str = "", minimum: float | None = None) -> float:
    """A finite real number (not a bool), at least ``minimum`` if given; ``what`` says what it is,
    e.g. ``" (a mean)"``. A 0-d real tensor (a metric returned as a tensor) counts as its number."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_complex() and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"`{name}` must be a real number{what}; got {value!r}.")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be a finite number{what}; got {value!r}.")
    if minimum is not None and v < minimum:
        raise ValueError(f"`{name}` must be >= {minimum:g}{what}; got {value!r}.")
    return v


def check_positive(value, name: str, what: str = "") -> float:
    """A finite number > 0."""
    v = check_real(value, name, what)
    if not v > 0.0:
        raise ValueError(f"`{name}` must be > 0{what}; got {value!r}.")
    return v


def check_unit_interval(value, name: str, what: str = " (a probability)") -> float:
    """A finite number in [0, 1]."""
    v = check_real(value, name, what)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]{what}; got {value!r}.")
    return v


def check_seed(seed, name: str = "seed") -> int:
    """An int in [0, 2**64), what ``torch.Generator.manual_seed`` accepts."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ArgumentTypeError(f"`{name}` must be an int; got {seed!r}.")
    if not 0 <= seed < 2**64:
        raise ValueError(f"`{name}` must be in [0, 2**64); got {seed}.")
    return int(seed)


def check_device(device, name: str = "device") -> torch.device:
    """None (the CPU), a ``torch.device`` or a device string such as ``"cpu"`` or ``"cuda:0"``,
    which must exist on this machine (a CUDA device needs ``torch.cuda.is_available()``)."""
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise ArgumentTypeError(f"`{name}` must be None, a torch.device or a string like 'cpu' or 'cuda'; got {device!r}.")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be None, a torch.device or a string like 'cuda'; got {device!r} ({err}).") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"`{name}`={device!r} asks for CUDA, but this machine has no usable CUDA GPU "
                f"(torch.cuda.is_available() is False); use {name}='cpu' (or None to pick the CPU)."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"`{name}`={device!r}: there are only {torch.cuda.device_count()} CUDA device(s).")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"`{name}`={device!r} asks for Apple's MPS, which this machine lacks; use {name}='cpu'.")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"`{name}`={device!r}: grpo_core runs on 'cpu' or 'cuda' (or 'mps'); got a {dev.type!r} device.")
    return dev


def check_bool(value, name: str) -> bool:
    """True or False (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"`{name}` must be True or False; got {value!r}.")
    return value


def check_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """A floating torch dtype."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"`{name}` must be a floating torch dtype such as torch.float32; got {dtype!r}.")
    return dtype


def as_grouped(rewards, group_size) -> tuple[torch.Tensor, torch.Size]:
    """Validate ``rewards`` (``[B*G]`` with groups contiguous, or ``[B, G]``) and view them as
    ``[B, G]``; also return the shape to give back."""
    r = as_float_tensor(rewards, "rewards")
    g = check_group_size(group_size)
    if r.dim() == 1:
        if r.numel() == 0 or r.numel() % g != 0:
            raise ValueError(
                f"`rewards` has {r.numel()} entries, which is not a positive multiple of "
                f"group_size={g}. Pass B*G rewards with each prompt's G answers contiguous, "
                f"or a [B, G] tensor; drop or complete any partial group first."
            )
        grouped = r.view(-1, g)
    elif r.dim() == 2:
        if r.shape[1] != g or r.shape[0] == 0:
            raise ValueError(
                f"`rewards` has shape {tuple(r.shape)} but group_size={g}; a 2-D tensor must be "
                f"[B, G] with G == group_size and B >= 1."
            )
        grouped = r
    else:
        raise ValueError(f"`rewards` must be 1-D [B*G] or 2-D [B, G]; got shape {tuple(r.shape)}.")
    check_finite(grouped, "rewards")
    return grouped, r.shape


def check_instance(value, cls: type, name: str, hint: str = ""):
    """``value`` must be an instance of ``cls``; ``hint`` says where to get one."""
    if not isinstance(value, cls):
        raise ArgumentTypeError(f"`{name}` must be a {cls.__name__}{hint}; got {type(value).__name__}.")
    return value


def as_probs(x, name: str) -> torch.Tensor:
    """A categorical distribution: a 1-D float64 vector of K >= 2 non-negative entries summing to 1."""
    p = as_float_tensor(x, name).double()
    if p.dim() != 1 or p.numel() < 2:
        raise ValueError(f"`{name}` must be a 1-D vector of K >= 2 probabilities; got shape {tuple(p.shape)}.")
    check_finite(p, name)
    if bool((p < 0).any()) or abs(float(p.sum()) - 1.0) > 1e-6:
        raise ValueError(f"`{name}` must be non-negative and sum to 1 (a categorical distribution); got sum {float(p.sum()):.6g}.")
    return p


def as_prob_pair(probs, ref_probs) -> tuple[torch.Tensor, torch.Tensor]:
    """Two categorical distributions over the same K answers (see :func:`as_probs`)."""
    p, q = as_probs(probs, "probs"), as_probs(ref_probs, "ref_probs")
    if p.shape != q.shape:
        raise ValueError(f"`ref_probs` has {q.numel()} entries but `probs` has {p.numel()}; both must cover the same K answers.")
    return p, q


def as_logits(x, name: str) -> torch.Tensor:
    """A 1-D finite vector of K >= 2 logits, one per answer."""
    t = as_float_tensor(x, name)
    if t.dim() != 1 or t.numel() < 2:
        raise ValueError(f"`{name}` must be 1-D with K >= 2 entries (one logit per answer); got shape {tuple(t.shape)}.")
    check_finite(t, name)
    return t


def as_actions(actions, k: int, name: str = "actions") -> torch.Tensor:
    """A non-empty 1-D integer tensor of answer indices in ``0..k-1``, as int64."""
    if actions is None:
        raise ArgumentTypeError(f"`{name}` is None; pass the sampled answer indices (a list or an integer tensor).")
    try:
        a = actions if isinstance(actions, torch.Tensor) else torch.as_tensor(actions)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ArgumentTypeError(f"`{name}` must be a list or tensor of answer indices; got {type(actions).__name__} ({err}).") from None
    if a.is_floating_point() or a.is_complex() or a.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integer answer indices; got dtype {a.dtype}.")
    if a.dim() != 1 or a.numel() == 0:
        raise ValueError(f"`{name}` must be 1-D and non-empty (one sampled answer each); got shape {tuple(a.shape)}.")
    if bool((a < 0).any()) or bool((a >= k).any()):
        raise ValueError(f"`{name}` must lie in 0..{k - 1} (there are K = {k} answers); got {a.min().item()}..{a.max().item()}.")
    return a.long()
