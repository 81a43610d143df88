"""Side by side: grpo_core's GRPO trainer and TRL 1.16's GRPOTrainer on the same setting.

The setting (issue 17): a model of the same shape (2 layers, width 64, 4 heads, MLP 4 x 64, the
task's character vocabulary), G = 8 completions for each of 16 prompts per step, at most 8 new
tokens, temperature 1, the addition task ("47+85=" -> "132<eos>") and its exact-match reward,
Adam at 1e-3, gradient-norm clip 1, beta = 0, clip 0.2, mu = 1, one optimizer step per batch, and
the per-answer token-mean loss (TRL `loss_type="grpo"`, ours `agg="seq-mean-token-mean"`). The
prompts TRL sees are the training split of grpo_core's own AddTask.

`--warmup` steps are not timed, then `--steps` steps are. Each side runs in a child process of its
own (so its peak RSS is its own), the two alternately, `--repeats` times; the parent prints
medians: seconds per step, completion tokens per second, mean completion length, peak RSS, and
the line `ratio <ours/TRL completion tokens per second>` (target >= 2).

What stays different: TRL trains a LlamaForCausalLM (RMSNorm, SwiGLU, rotary positions, untied
head) from random weights, whose answers run long; ours trains TinyGPT from grpo_core's
supervised warm-up (cached on disk, not timed) whose answers are short. Tokens per second
favours the longer answers; seconds per step is printed too, and `--ours-init random` starts
ours from random weights like TRL's.

Offline: the tokenizer and the model are built in memory; nothing is downloaded.
Run: `make bench-trl` (in .venv-conformance, which has trl), or
`.venv-conformance/bin/python benchmarks/bench_vs_trl.py [--steps 20] [--repeats 3] [--threads 1]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPTS_PER_STEP, G, MAX_NEW, LR = 16, 8, 8, 1e-3


def addition_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (prompt, answer) strings from the training split of grpo_core's addition task."""
    import torch

    from grpo_core.training.tasks import TOKENIZER, make_task

    task = make_task("add")
    ids = task.sample_ids(n, torch.Generator().manual_seed(seed))
    prompts = task.prompts(ids)
    answers, lengths = task.targets(ids)
    return [(TOKENIZER.decode(p), TOKENIZER.decode(a[:k])) for p, a, k in zip(prompts, answers, lengths.tolist())]


def run_trl(args) -> dict:
    import torch
    import trl
    from datasets import Dataset
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(args.threads)
    symbols = "0123456789+=>"
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(symbols)}, "<unk>": 2 + len(symbols)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(vocab), hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=32, pad_token_id=0, eos_token_id=1, bos_token_id=1))
    total = args.warmup + args.steps
    rows = addition_rows(PROMPTS_PER_STEP * total + 64, args.seed)
    data = Dataset.from_dict({"prompt": [p for p, _ in rows], "answer": [a for _, a in rows]})

    def exact_match(completions, answer, **_):
        return [1.0 if c == a else 0.0 for c, a in zip(completions, answer)]

    config = GRPOConfig(
        output_dir=os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench_vs_trl"), use_cpu=True, bf16=False,
        fp16=False, report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=10**6, seed=args.seed,
        data_seed=args.seed, per_device_train_batch_size=PROMPTS_PER_STEP * G, num_generations=G,
        max_completion_length=MAX_NEW, max_steps=total, learning_rate=LR, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, beta=0.0, epsilon=0.2, num_iterations=1,
        loss_type="grpo", temperature=1.0, top_p=1.0, top_k=0, dataloader_num_workers=0, log_completions=False)
    trainer = GRPOTrainer(model=model, reward_funcs=[exact_match], args=config, train_dataset=data,
                          processing_class=tok)

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.lengths = [], []

        def on_step_begin(self, *_, **__):
            self.t0 = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.times.append(time.perf_counter() - self.t0)
            self.lengths.append(trainer._metrics["train"]["completions/mean_length"][-1])

    timer = Timer()
    trainer.add_callback(timer)
    trainer.train()
    return summary("trl", trl.__version__, sum(p.numel() for p in model.parameters()),
                   timer.times[args.warmup:], timer.lengths[args.warmup:])


def run_ours(args) -> dict:
    import grpo_core
    from grpo_core.training import GRPOConfig, GRPOTrainer, pretrain_base

    cfg = GRPOConfig(task="add", prompts_per_step=PROMPTS_PER_STEP, G=G, max_new_tokens=MAX_NEW, lr=LR,
                     lr_schedule="constant", max_grad_norm=1.0, beta=0.0, eps_low=0.2, mu=1, minibatches=1,
                     temperature=1.0, agg="seq-mean-token-mean", seed=args.seed, device="cpu",
                     threads=args.threads, sft_steps=600 if args.ours_init == "warm" else 0)
    tr = GRPOTrainer(cfg, base=pretrain_base(cfg))  # the warm-up is cached on disk and not timed
    times, lengths = [], []
    for k in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        rec = tr.step()
        if k >= args.warmup:
            times.append(time.perf_counter() - t0)
            lengths.append(rec["completion_len"])
    return summary("ours", grpo_core.__version__, tr.policy.n_params(), times, lengths)


def summary(side: str, version: str, params: int, times: list[float], lengths: list[float]) -> dict:
    tokens = sum(length * PROMPTS_PER_STEP * G for length in lengths)
    return dict(side=side, version=version, params=params, steps=len(times),
                s_per_step=statistics.median(times), tok_s=tokens / sum(times), mean_len=statistics.mean(lengths),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["trl", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternate the two sides this many times")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ours-init", choices=["warm", "random"], default="warm")
    args = parser.parse_args()
    if args.side:
        print("RESULT " + json.dumps(run_trl(args) if args.side == "trl" else run_ours(args)), flush=True)
        return
    results: dict[str, list[dict]] = {"ours": [], "trl": []}
    for rep in range(args.repeats):
        for side in ("ours", "trl"):
            cmd = [sys.executable, os.path.abspath(__file__), "--side", side, "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", str(args.threads), "--seed", str(args.seed),
                   "--ours-init", args.ours_init]
            load = os.getloadavg()[0]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"the {side} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
            r = json.loads(line[len("RESULT "):])
            results[side].append(r)
            print(f"[{rep}] {side:4s} {r['s_per_step']:.4f} s/step, {r['tok_s']:8.0f} completion tok/s, mean length "
                  f"{r['mean_len']:.2f}, peak RSS {r['peak_rss_mb']:.0f} MB, {r['params']:,} parameters, load {load:.2f}",
                  flush=True)
    med = {s: {k: statistics.median(r[k] for r in rs) for k in ("s_per_step", "tok_s", "mean_len", "peak_rss_mb")}
           for s, rs in results.items()}
    print(f"\n{'':5s} {'s/step':>8s} {'tok/s':>8s} {'length':>7s} {'peak RSS MB':>12s}   (medians of {args.repeats}, "
          f"{args.steps} timed steps each, {args.threads} thread(s))")
    for s in ("ours", "trl"):
        m = med[s]
        print(f"{s:5s} {m['s_per_step']:8.4f} {m['tok_s']:8.0f} {m['mean_len']:7.2f} {m['peak_rss_mb']:12.0f}")
    print(f"steps per second, ours/TRL: {med['trl']['s_per_step'] / med['ours']['s_per_step']:.2f}")
    print(f"ratio {med['ours']['tok_s'] / med['trl']['tok_s']:.2f}")


if __name__ == "__main__":
    main()
