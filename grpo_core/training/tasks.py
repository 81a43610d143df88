"""Verifiable tasks for the trainer: prompts, a checker, demonstrations, a held-out set.

Every task shares one character-level :class:`Tokenizer` (digits, a few symbols, ``<pad>`` and
``<eos>``), has prompts of a fixed length, and a reward that is 1 when the completion is exactly
right (ending with ``<eos>``) and 0 otherwise, computed for a whole batch at once. Problems are
split deterministically: one in ten is held out for evaluation and never sampled for training.

- :class:`SortTask`: ``"31415>"`` -> ``"11345<eos>"``, sort ``n_digits`` digits.
- :class:`AddTask`: ``"47+85="`` -> ``"132<eos>"``, add two numbers below 100.
- :class:`SortWorkTask`: sort, and the answer may be followed by up to ``max_work`` optional
  "working" tokens ``=`` before ``<eos>`` (``"31415>"`` -> ``"11345===<eos>"`` is right too): a
  task whose right and wrong answers can be long or short, for the length dynamics of the
  aggregation modes.

``demonstrations`` returns answers with errors (one digit replaced by another with probability
``error_rate``): the supervised warm-up on them gives the trainer's "base model" a policy that is
right only some of the time, the situation GRPO starts from with a pretrained language model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Tokenizer", "TOKENIZER", "Task", "SortTask", "AddTask", "SortWorkTask", "TASKS", "make_task"]


class Tokenizer:
    """Character-level tokenizer: ``<pad>`` = 0, ``<eos>`` = 1, then ``0123456789+=>``."""

    SYMBOLS = "0123456789+=>"

    def __init__(self):
        self.itos = ["<pad>", "<eos>"] + list(self.SYMBOLS)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.eos_id = 0, 1

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def digit(self, d):
        """Token id of digit(s) ``d`` (int or tensor)."""
        return d + 2

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(f"`text` has a character outside the vocabulary {self.SYMBOLS!r}: {err}.") from None

    def decode(self, ids, mask=None) -> str:
        """Text of ``ids``; stops at ``<eos>`` (shown as ``|``) and skips padding."""
        out = []
        for k, i in enumerate(ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if mask is not None and not bool(mask[k]):
                break
            if i == self.eos_id:
                out.append("|")
                break
            if i != self.pad_id:
                out.append(self.itos[i])
        return "".join(out)


TOKENIZER = Tokenizer()


def _held_out(ids: torch.Tensor) -> torch.Tensor:
    """One problem in ten is held out: a fixed hash of the problem id, not a random draw."""
    return (ids * 2654435761 % 4294967296) % 10 == 0


@dataclass(frozen=True)
class Task:
    """Base class. Subclasses define the problem space and the answer."""

    name = "task"

    @property
    def prompt_len(self) -> int:
        raise NotImplementedError

    @property
    def max_new_tokens(self) -> int:
        raise NotImplementedError

    @property
    def n_problems(self) -> int:
        raise NotImplementedError

    def _prompts(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _answers(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Answer digit tokens ``[n, L]`` (padded) and answer lengths ``[n]``, without ``<eos>``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- shared machinery

    def sample_ids(self, n: int, generator: torch.Generator, split: str = "train") -> torch.Tensor:
        """``n`` problem ids from the training split (or ``"heldout"``), uniformly, reproducibly."""
        if split not in ("train", "heldout"):
            raise ValueError(f"`split`={split!r} is not known; choose 'train' or 'heldout'.")
        want_heldout = split == "heldout"
        out = torch.empty(0, dtype=torch.long)
        while out.numel() < n:
            cand = torch.randint(self.n_problems, (2 * n + 16,), generator=generator)
            out = torch.cat([out, cand[_held_out(cand) == want_heldout]])
        return out[:n]

    def heldout_ids(self, n: int = 512, seed: int = 1234) -> torch.Tensor:
        """A fixed evaluation set of ``n`` held-out problems."""
        return self.sample_ids(n, torch.Generator().manual_seed(seed), split="heldout")

    def prompts(self, ids: torch.Tensor) -> torch.Tensor:
        return self._prompts(ids.long())

    def targets(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The correct completion ``[n, max_new_tokens]`` (answer, ``<eos>``, padding) and its length."""
        digits, length = self._answers(ids.long())
        n = digits.shape[0]
        out = torch.full((n, self.max_new_tokens), TOKENIZER.pad_id, dtype=torch.long)
        out[:, : digits.shape[1]] = digits
        out[torch.arange(n), length] = TOKENIZER.eos_id
        return out, length + 1

    def reward(self, ids: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
        """1.0 where the completion equals the answer followed by ``<eos>``, else 0.0: ``[n]``."""
        target, length = self.targets(ids.to("cpu"))
        target, length = target.to(completions.device), length.to(completions.device)
        pos = torch.arange(self.max_new_tokens, device=completions.device)[None, :]
        relevant = pos < length[:, None]
        c = completions[:, : self.max_new_tokens]
        return ((c == target) | ~relevant).all(dim=1).float()

    def demo_lengths(self, ids: torch.Tensor, demos: torch.Tensor) -> torch.Tensor:
        """Real tokens of each demonstration of ``ids`` (``<eos>`` included): the warm-up's mask."""
        return self.targets(ids)[1]

    def demonstrations(self, ids: torch.Tensor, error_rate: float, generator: torch.Generator) -> torch.Tensor:
        """Answers with ``<eos>``; with probability ``error_rate`` one answer digit is replaced by
        another digit (never by itself), so the demonstration is wrong."""
        if not 0.0 <= float(error_rate) <= 1.0:
            raise ValueError(f"`error_rate` must be in [0, 1]; got {error_rate!r}.")
        target, length = self.targets(ids)
        n = target.shape[0]
        wrong = torch.rand(n, generator=generator) < error_rate
        where = (torch.rand(n, generator=generator) * (length - 1)).long()  # a digit, not the <eos>
        shift = torch.randint(1, 10, (n,), generator=generator)
        old = target[torch.arange(n), where] - 2
        new = (old + shift) % 10 + 2
        target[torch.arange(n)[wrong], where[wrong]] = new[wrong]
        return target


@dataclass(frozen=True)
class SortTask(Task):
    """Sort ``n_digits`` digits: prompt ``d1 .. dn >``, answer the digits in increasing order."""

    n_digits: int = 5
    name = "sort"

    @property
    def prompt_len(self) -> int:
        return self.n_digits + 1

    @property
    def max_new_tokens(self) -> int:
        return self.n_digits + 2

    @property
    def n_problems(self) -> int:
        return 10**self.n_digits

    def _digits(self, ids: torch.Tensor) -> torch.Tensor:
        powers = 10 ** torch.arange(self.n_digits - 1, -1, -1)
        return ids[:, None] // powers % 10

    def _prompts(self, ids):
        d = self._digits(ids)
        gt = torch.full((ids.shape[0], 1), TOKENIZER.stoi[">"], dtype=torch.long)
        return torch.cat([TOKENIZER.digit(d), gt], dim=1)

    def _answers(self, ids):
        d = self._digits(ids).sort(dim=1).values
        return TOKENIZER.digit(d), torch.full((ids.shape[0],), self.n_digits, dtype=torch.long)


@dataclass(frozen=True)
class AddTask(Task):
    """Add two numbers in ``0..99``: prompt ``a1 a2 + b1 b2 =`` (zero-padded), answer the sum."""

    name = "add"

    @property
    def prompt_len(self) -> int:
        return 6

    @property
    def max_new_tokens(self) -> int:
        return 5

    @property
    def n_problems(self) -> int:
        return 100 * 100

    def _prompts(self, ids):
        a, b = ids // 100, ids % 100
        cols = [a // 10, a % 10, None, b // 10, b % 10, None]
        plus = torch.full_like(ids, TOKENIZER.stoi["+"])
        eq = torch.full_like(ids, TOKENIZER.stoi["="])
        parts = [TOKENIZER.digit(c) if c is not None else (plus if k == 2 else eq) for k, c in enumerate(cols)]
        return torch.stack(parts, dim=1)

    def _answers(self, ids):
        s = ids // 100 + ids % 100
        length = 1 + (s >= 10).long() + (s >= 100).long()
        digits = torch.stack([s // 100, s // 10 % 10, s % 10], dim=1)
        # right-align: drop the leading zeros by shifting each row left by 3 - length
        idx = (torch.arange(3)[None, :] + (3 - length)[:, None]).clamp(max=2)
        out = TOKENIZER.digit(digits.gather(1, idx))
        out = torch.where(torch.arange(3)[None, :] < length[:, None], out, torch.full_like(out, TOKENIZER.pad_id))
        return out, length


@dataclass(frozen=True)
class SortWorkTask(SortTask):
    """Sort ``n_digits`` digits; the answer may be followed by 0 to ``max_work`` working tokens ``=``.

    A completion is right when its first ``n_digits`` tokens are the sorted digits, every token
    after them up to the first ``<eos>`` is ``=``, and that ``<eos>`` comes within the limit
    (``n_digits + max_work + 1`` tokens). The working tokens change nothing about correctness, so
    the length of an answer is free, and what happens to it over training is the aggregation's
    doing. Demonstrations carry a number of working tokens drawn uniformly from ``0..max_work``.
    """

    max_work: int = 6
    name = "sort-work"

    def __post_init__(self):
        if isinstance(self.max_work, bool) or not isinstance(self.max_work, int) or self.max_work < 0:
            raise ValueError(f"`max_work` must be an int >= 0 (the most working tokens); got {self.max_work!r}.")

    @property
    def max_new_tokens(self) -> int:
        return self.n_digits + self.max_work + 1

    def reward(self, ids: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
        n = self.n_digits
        digits, _ = self._answers(ids.to("cpu").long())
        c = completions[:, : self.max_new_tokens]
        digits_ok = (c[:, :n] == digits.to(c.device)).all(dim=1)
        rest = c[:, n:]
        is_eos = rest == TOKENIZER.eos_id
        before_eos = is_eos.long().cumsum(dim=1) == 0
        work_ok = ((rest == TOKENIZER.stoi["="]) | ~before_eos).all(dim=1)
        return (digits_ok & work_ok & is_eos.any(dim=1)).float()

    def demonstrations(self, ids: torch.Tensor, error_rate: float, generator: torch.Generator) -> torch.Tensor:
        """Sorted digits (one replaced with probability ``error_rate``), then ``k ~ U{0..max_work}``
        working tokens, then ``<eos>``: ``[n, max_new_tokens]``."""
        short = SortTask(self.n_digits).demonstrations(ids, error_rate, generator)[:, : self.n_digits]
        n = short.shape[0]
        k = torch.randint(0, self.max_work + 1, (n,), generator=generator)
        out = torch.full((n, self.max_new_tokens), TOKENIZER.pad_id, dtype=torch.long)
        out[:, : self.n_digits] = short
        pos = torch.arange(self.max_new_tokens - self.n_digits)[None, :]
        tail = torch.where(pos < k[:, None], TOKENIZER.stoi["="], TOKENIZER.pad_id)
        tail = torch.where(pos == k[:, None], TOKENIZER.eos_id, tail)
        out[:, self.n_digits :] = tail
        return out

    def demo_lengths(self, ids: torch.Tensor, demos: torch.Tensor) -> torch.Tensor:
        """Real tokens of each demonstration (up to and including its ``<eos>``)."""
        return (demos == TOKENIZER.eos_id).long().argmax(dim=1) + 1


TASKS = {"sort": SortTask, "add": AddTask, "sort-work": SortWorkTask}


def make_task(name: str, **kwargs) -> Task:
    if name not in TASKS:
        raise ValueError(f"`name`={name!r} is not known; choose one of {sorted(TASKS)}.")
    return TASKS[name](**kwargs)
