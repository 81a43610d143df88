"""The trainer's language model and tasks: tokenizer, answers, rewards, sampling and masking."""

import pytest
import torch

from grpo_core.training.models import ModelConfig, TinyGPT, ValueHead, generate, token_logprobs
from grpo_core.training.tasks import TOKENIZER, AddTask, SortTask, make_task


def _text(task, ids):
    tgt, _ = task.targets(torch.tensor(ids))
    return [TOKENIZER.decode(p) + " " + TOKENIZER.decode(t) for p, t in zip(task.prompts(torch.tensor(ids)), tgt)]


def test_tokenizer_round_trip():
    assert TOKENIZER.decode(TOKENIZER.encode("47+85=132")) == "47+85=132"
    assert TOKENIZER.decode([5, 6, TOKENIZER.eos_id, 7]) == "34|"
    with pytest.raises(ValueError, match="`text`"):
        TOKENIZER.encode("a")


def test_sort_and_add_hand_examples():
    assert _text(SortTask(), [31415, 7]) == ["31415> 11345|", "00007> 00007|"]
    assert _text(AddTask(), [4785, 3, 9999, 1000]) == ["47+85= 132|", "00+03= 3|", "99+99= 198|", "10+00= 10|"]


@pytest.mark.parametrize("task", [SortTask(), AddTask(), SortTask(n_digits=3)])
def test_reward_is_one_exactly_for_the_answer_with_eos(task):
    ids = task.sample_ids(64, torch.Generator().manual_seed(0))
    tgt, length = task.targets(ids)
    assert task.reward(ids, tgt).eq(1).all()
    wrong = tgt.clone()
    wrong[:, 0] = (wrong[:, 0] - 2 + 1) % 10 + 2  # change the first digit
    assert task.reward(ids, wrong).eq(0).all()
    no_eos = tgt.clone()
    no_eos[torch.arange(64), length - 1] = TOKENIZER.digit(0)
    assert task.reward(ids, no_eos).eq(0).all()
    trailing = tgt.clone()
    trailing[:, -1] = TOKENIZER.digit(3)  # after <eos>: ignored
    assert task.reward(ids, trailing).eq(1).all()


@pytest.mark.parametrize("task", [SortTask(), AddTask()])
def test_heldout_split_is_disjoint_and_about_a_tenth(task):
    gen = torch.Generator().manual_seed(1)
    train = set(task.sample_ids(4000, gen).tolist())
    held = set(task.heldout_ids(500).tolist())
    assert not train & held
    from grpo_core.training.tasks import _held_out

    share = _held_out(torch.arange(task.n_problems)).float().mean().item()
    assert 0.08 < share < 0.12


@pytest.mark.parametrize("task", [SortTask(), AddTask()])
def test_demonstrations_have_the_requested_error_rate(task):
    gen = torch.Generator().manual_seed(2)
    ids = task.sample_ids(2000, gen)
    assert task.reward(ids, task.demonstrations(ids, 0.0, gen)).eq(1).all()
    assert task.reward(ids, task.demonstrations(ids, 1.0, gen)).eq(0).all()
    demos = task.demonstrations(ids, 0.3, gen)
    wrong_share = 1 - task.reward(ids, demos).mean().item()
    assert abs(wrong_share - 0.3) < 0.04
    tgt, _ = task.targets(ids)
    assert ((demos != tgt).sum(dim=1) <= 1).all()  # one digit at most


def test_make_task_unknown():
    with pytest.raises(ValueError, match="`name`='chess'"):
        make_task("chess")


# ------------------------------------------------------------------------- model

CFG = ModelConfig(vocab_size=TOKENIZER.vocab_size, max_len=16, d_model=32, n_layers=2, n_heads=4)


def test_model_is_causal():
    torch.manual_seed(0)
    model = TinyGPT(CFG).eval()
    x = torch.randint(2, 12, (2, 10))
    y = x.clone()
    y[:, 7:] = 3
    assert torch.allclose(model(x)[:, :7], model(y)[:, :7], atol=1e-6)
    assert not torch.allclose(model(x)[:, 7:], model(y)[:, 7:])


def test_generate_masks_after_eos_and_its_logprobs_match_a_full_forward():
    torch.manual_seed(0)
    model = TinyGPT(CFG).eval()
    prompts = torch.randint(2, 12, (64, 5))
    gen = torch.Generator().manual_seed(0)
    comp, mask, logp = generate(model, prompts, 8, TOKENIZER.eos_id, TOKENIZER.pad_id, temperature=1.3, generator=gen)
    assert comp.shape == mask.shape == logp.shape == (64, 8)
    for row in range(64):
        ends = (comp[row] == TOKENIZER.eos_id).nonzero()
        if len(ends):
            e = int(ends[0])
            assert mask[row, : e + 1].all() and not mask[row, e + 1 :].any()
            assert (comp[row, e + 1 :] == TOKENIZER.pad_id).all()
        else:
            assert mask[row].all()
    assert (logp[~mask] == 0).all()
    full = token_logprobs(model, prompts, comp, temperature=1.3)
    assert torch.allclose(full[mask], logp[mask], atol=1e-5)


def test_greedy_generation_is_the_argmax():
    torch.manual_seed(1)
    model = TinyGPT(CFG).eval()
    prompts = torch.randint(2, 12, (4, 5))
    comp, mask, _ = generate(model, prompts, 3, TOKENIZER.eos_id, TOKENIZER.pad_id, temperature=0.0)
    first = model(prompts)[:, -1].argmax(-1)
    assert torch.equal(comp[:, 0], first)


def test_value_head_and_config_errors():
    assert ValueHead(CFG)(torch.randint(0, 12, (3, 7))).shape == (3, 7)
    with pytest.raises(ValueError, match="`d_model`=30 must be a multiple"):
        ModelConfig(vocab_size=15, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="max_len"):
        TinyGPT(CFG)(torch.zeros(1, 17, dtype=torch.long))


def test_sequence_probabilities_of_all_completions_sum_to_one():
    from grpo_core.training.models import ModelConfig, TinyGPT, all_completions, generate, sequence_logprob

    torch.manual_seed(0)
    model = TinyGPT(ModelConfig(vocab_size=5, max_len=6, d_model=16, n_layers=1, n_heads=2))
    comp, mask = all_completions(5, 3, eos_id=1, pad_id=0)
    assert comp.shape == (1 + 4 + 16 + 64, 3)  # k = 0, 1, 2 then eos; or 3 tokens cut
    assert len({tuple(r) for r in comp.tolist()}) == comp.shape[0]
    prompt = torch.tensor([[2, 3, 4]]).expand(comp.shape[0], -1)
    with torch.no_grad():
        logp = sequence_logprob(model, prompt, comp, mask, temperature=0.7)
    assert abs(torch.logsumexp(logp.double(), 0).exp().item() - 1.0) < 1e-5
    # and it is the log-probability generate() sampled with
    gen = torch.Generator().manual_seed(1)
    c, m, lp = generate(model, prompt[:8], 3, 1, 0, temperature=0.7, generator=gen)
    with torch.no_grad():
        assert torch.allclose(sequence_logprob(model, prompt[:8], c, m, temperature=0.7), lp.sum(1), atol=1e-5)
    with pytest.raises(ValueError, match="`mask` has shape"):
        sequence_logprob(model, prompt[:2], comp[:2], mask[:1])
