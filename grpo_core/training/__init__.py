"""GRPO on a small language model, on a CPU in minutes: the training layer of grpo_core.

- :mod:`~grpo_core.training.models`: :class:`TinyGPT`, a small causal transformer defined here (no
  download), PPO's :class:`ValueHead`, batched generation and token log-probabilities;
- :mod:`~grpo_core.training.tasks`: sorting and addition with a held-out split and imperfect
  demonstrations;
- :mod:`~grpo_core.training.trainer`: :class:`GRPOConfig`, :class:`GRPOTrainer` (GRPO and RLOO),
  :class:`PPOTrainer`, the supervised warm-up of the base model;
- :mod:`~grpo_core.training.variants`: Dr. GRPO, DAPO, GSPO, RLOO as trainer settings, with
  their TRL and verl names;
- :mod:`~grpo_core.training.runs`: cached training runs with held-out evaluations;
- :mod:`~grpo_core.training.cache`: where base models and runs are cached;
- :mod:`~grpo_core.training.cli`: ``python -m grpo_core.train``.

It imports the core and torch only: no plotly, no widgets.
"""

from .cache import cache_dir
from .runs import RunResult, run, sweep
from .trainer import GRPOConfig, GRPOTrainer, PPOTrainer, gpu_config, make_trainer, pretrain_base, state_bytes
from .variants import VARIANTS, variant_config

__all__ = [
    "GRPOConfig",
    "GRPOTrainer",
    "PPOTrainer",
    "make_trainer",
    "gpu_config",
    "pretrain_base",
    "state_bytes",
    "RunResult",
    "run",
    "sweep",
    "VARIANTS",
    "variant_config",
    "cache_dir",
]
