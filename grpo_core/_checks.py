"""Input checks shared by every public function.

Each check raises ``ValueError`` whose message names the argument and says how to fix it,
so a reader who passes the wrong thing learns what was expected instead of getting a
broadcasting surprise or a NaN three functions later.
"""

from __future__ import annotations

import torch


def as_float_tensor(x, name: str) -> torch.Tensor:
    """Turn ``x`` (tensor, list, NumPy array) into a floating-point tensor.

    Integer and boolean inputs become the default float dtype; floating tensors keep their
    dtype and device.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"`{name}` must be a tensor or a list of numbers; got {type(x).__name__} ({err})."
            ) from None
    if not (t.is_floating_point()):
        if t.is_complex():
            raise ValueError(f"`{name}` must be real-valued; got a complex tensor.")
        t = t.to(torch.get_default_dtype())
    return t


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise if ``t`` holds NaN or +-inf, saying where the first bad value is."""
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"`{name}` contains {t[idx].item()} at index {idx}; every value must be finite. "
            f"Fix the value upstream (a reward function that returned NaN, a log-probability "
            f"of a token with zero probability, or a padding position not filled with 0)."
        )


def check_group_size(group_size, name: str = "group_size") -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise ValueError(f"`{name}` must be an int (the number of answers per prompt, G); got {group_size!r}.")
    if group_size < 2:
        raise ValueError(
            f"`{name}` must be at least 2: a group of one answer has no spread to compare against "
            f"(got {group_size}). Sample G >= 2 answers per prompt."
        )
    return group_size


def check_int(value, name: str, minimum: int = 1, hint: str = "") -> int:
    """``value`` must be an int (not a bool) of at least ``minimum``; ``hint`` says what it is."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}{hint}; got {value!r}.")
    return value


def check_same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"`{b_name}` has shape {tuple(b.shape)} but `{a_name}` has shape {tuple(a.shape)}; "
            f"they must match (one value per token)."
        )


def check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"`{name}`={value!r} is not known; choose one of {sorted(choices)}.")


def check_nonneg_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{name}` must be a number; got {value!r}.")
    v = float(value)
    if not (v >= 0.0) or v == float("inf"):
        raise ValueError(f"`{name}` must be a finite number >= 0; got {value!r}.")
    return v


def as_mask(mask, like: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A 0/1 mask of the same shape as ``like``, returned in ``like``'s dtype."""
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(mask)
    if m.shape != like.shape:
        raise ValueError(
            f"`{name}` has shape {tuple(m.shape)} but the values have shape {tuple(like.shape)}; "
            f"pass one 0/1 entry per token (1 = a real completion token, 0 = padding)."
        )
    if m.dtype != torch.bool:
        if not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"`{name}` must hold only 0 and 1 (or True/False); use a bool tensor.")
    return m.to(device=like.device, dtype=like.dtype)
