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


# ------------------------------------------------------------------------- KV cache and fast log-probs


def test_forward_cached_in_pieces_matches_one_forward():
    torch.manual_seed(3)
    model = TinyGPT(CFG).eval()
    x = torch.randint(2, 12, (6, 11))
    with torch.no_grad():
        full = model(x)
        a, past = model.forward_cached(x[:, :5])
        b, past = model.forward_cached(x[:, 5:9], past)  # several positions against the cache
        c, past = model.forward_cached(x[:, 9:10], past)  # one position
        d, _ = model.forward_cached(x[:, 10:], past)
    assert torch.allclose(torch.cat([a, b, c, d], 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="max_len"):
        model.forward_cached(torch.zeros(1, 6, dtype=torch.long), model.forward_cached(x)[1])


@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_kv_cache_generation_samples_what_the_full_recompute_samples(temperature):
    torch.manual_seed(0)
    model = TinyGPT(CFG).eval()
    prompts = torch.randint(2, 12, (16, 5)).repeat_interleave(4, 0)  # groups of equal prompts
    out = [generate(model, prompts, 8, TOKENIZER.eos_id, TOKENIZER.pad_id, temperature=temperature,
                    generator=torch.Generator().manual_seed(5), kv_cache=kv) for kv in (True, False)]
    (c1, m1, l1), (c0, m0, l0) = out
    assert torch.equal(c1, c0) and torch.equal(m1, m0)
    assert torch.allclose(l1, l0, atol=1e-5)


def test_completion_logprobs_equal_token_logprobs_values_and_gradients():
    from grpo_core.training.models import completion_logprobs

    torch.manual_seed(1)
    model = TinyGPT(CFG)
    prompts = torch.randint(2, 12, (8, 5)).repeat_interleave(4, 0)
    comp, mask, _ = generate(model.eval(), prompts, 8, TOKENIZER.eos_id, TOKENIZER.pad_id,
                             generator=torch.Generator().manual_seed(2))
    model.train()
    longest = int(mask.sum(1).max())
    ref = token_logprobs(model, prompts, comp)
    (ref * mask).sum().backward()
    g_ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fast, ent = completion_logprobs(model, prompts, comp, length=longest, entropy=True)
    (fast * mask).sum().backward()
    assert fast.shape == ent.shape == comp.shape
    assert torch.allclose(fast[mask], ref[mask], atol=1e-5) and (fast[:, longest:] == 0).all()
    assert all(torch.allclose(p.grad, g, atol=1e-5) for p, g in zip(model.parameters(), g_ref))
    assert (ent[mask] > 0).all() and (ent[mask] <= torch.log(torch.tensor(float(CFG.vocab_size))) + 1e-5).all()
    # distinct prompts (nothing shared) and the full length give the same numbers too
    with torch.no_grad():
        assert torch.allclose(completion_logprobs(model, prompts.flip(1), comp), token_logprobs(model, prompts.flip(1), comp), atol=1e-5)


# ------------------------------------------------------------------ the length task


def _completion(text, width):
    ids = [TOKENIZER.eos_id if ch == "|" else TOKENIZER.stoi[ch] for ch in text]
    return ids + [TOKENIZER.pad_id] * (width - len(ids))


def test_sort_work_rewards_the_answer_with_any_number_of_working_tokens():
    task = make_task("sort-work", n_digits=3, max_work=2)
    assert task.max_new_tokens == 6 and task.prompt_len == 4
    texts = {"113|": 1, "113=|": 1, "113==|": 1, "113===": 0,      # no <eos> within the limit
             "131|": 0, "113=1|": 0, "11|": 0, "1133|": 0, "113": 0, "113|==": 1}
    comp = torch.tensor([_completion(t, 6) for t in texts])
    ids = torch.full((len(texts),), 131)                             # "131>" -> "113"
    assert task.reward(ids, comp).tolist() == [float(v) for v in texts.values()]


def test_sort_work_demonstrations_vary_in_length_and_are_right_without_errors():
    task = make_task("sort-work", max_work=4)
    gen = torch.Generator().manual_seed(0)
    ids = task.sample_ids(2000, gen)
    demos = task.demonstrations(ids, 0.0, gen)
    assert bool(task.reward(ids, demos).eq(1).all())
    lengths = task.demo_lengths(ids, demos)
    assert set(lengths.tolist()) == set(range(6, 11))               # 5 digits + 0..4 working tokens + <eos>
    wrong = task.reward(ids, task.demonstrations(ids, 1.0, gen))
    assert bool(wrong.eq(0).all())
    with pytest.raises(ValueError, match="`max_work`"):
        make_task("sort-work", max_work=-1)
