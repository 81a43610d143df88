"""grpo_core: the GRPO math that every chapter of "GRPO, interactively" imports.

The package has four layers; each imports only the layers above it in this list:

- **the core** (this package's top-level modules; torch alone): group advantages and their
  registry (:mod:`~grpo_core.advantages`), KL estimators (:mod:`~grpo_core.kl`), the clipped
  surrogate, aggregation and the loss (:mod:`~grpo_core.objective`), its per-token policy-loss
  kinds (:mod:`~grpo_core.policy_losses`), TRL's and verl's losses by name
  (:mod:`~grpo_core.presets`), the adaptive KL coefficient
  (:mod:`~grpo_core.kl_control`), PPO's pieces (:mod:`~grpo_core.ppo`: GAE, whitening, value loss)
  and DAPO's reward shaping (:mod:`~grpo_core.shaping`). Everything a training job imports.
- :mod:`grpo_core.analysis`: the chapters' experiments (reward distributions, exact policy
  gradients, KL analysis, variance, signal collapse, toy policies); torch and NumPy, no plotting.
- :mod:`grpo_core.training`: a small language model, tasks, the GRPO/RLOO/PPO trainer, the
  variants as settings, cached training runs and the command line (``python -m grpo_core.train``).
- :mod:`grpo_core.viz`: figures, the explorers (live ipywidgets and static plotly), the first
  cell of every chapter (:func:`grpo_core.viz.notebook_setup`); the only layer that imports
  plotly, ipywidgets or IPython (``pip install grpo_core[book]``).

``tests/test_layers.py`` checks these import directions.
"""

from .advantages import (
    ADVANTAGE_ESTIMATORS,
    COMBINE_MODES,
    PRESETS,
    RunningBaseline,
    bernoulli_advantages,
    combine_rewards,
    compute_advantages,
    global_baseline_advantages,
    group_advantages,
    loo_advantages,
    preset_advantages,
    register_advantage,
    threshold_advantages,
    trl_advantages,
    verl_gdpo_advantages,
    verl_grpo_advantages,
    verl_reinforce_pp_advantages,
)
from .kl import KL_CLAMPS, KL_ESTIMATORS, KL_KINDS, kl_estimate, kl_k1, kl_k2, kl_k3
from .kl_control import AdaptiveKLController
from .objective import (
    AGGREGATIONS,
    FRAMEWORK_METRICS,
    RATIO_LEVELS,
    SEQUENCE_RATIOS,
    aggregate,
    aggregation_weights,
    clip_active,
    clipped_surrogate,
    grpo_loss,
    sequence_log_ratio,
)
from .policy_losses import (
    IS_LEVELS,
    IS_MODES,
    POLICY_LOSSES,
    high_entropy_mask,
    register_policy_loss,
    rollout_importance_weights,
)
from .ppo import gae, token_rewards, value_loss, whiten
from .presets import LOSS_PRESETS, preset_loss, preset_settings
from .shaping import dynamic_sampling_keep, overlong_penalty, truncated

__version__ = "0.2.0"

__all__ = [
    "group_advantages",
    "preset_advantages",
    "loo_advantages",
    "bernoulli_advantages",
    "PRESETS",
    "threshold_advantages",
    "RunningBaseline",
    "global_baseline_advantages",
    "combine_rewards",
    "COMBINE_MODES",
    "ADVANTAGE_ESTIMATORS",
    "register_advantage",
    "compute_advantages",
    "trl_advantages",
    "verl_grpo_advantages",
    "verl_reinforce_pp_advantages",
    "verl_gdpo_advantages",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "kl_estimate",
    "KL_ESTIMATORS",
    "KL_KINDS",
    "KL_CLAMPS",
    "AdaptiveKLController",
    "clipped_surrogate",
    "aggregate",
    "grpo_loss",
    "AGGREGATIONS",
    "RATIO_LEVELS",
    "aggregation_weights",
    "clip_active",
    "sequence_log_ratio",
    "SEQUENCE_RATIOS",
    "FRAMEWORK_METRICS",
    "POLICY_LOSSES",
    "register_policy_loss",
    "rollout_importance_weights",
    "high_entropy_mask",
    "IS_LEVELS",
    "IS_MODES",
    "LOSS_PRESETS",
    "preset_loss",
    "preset_settings",
    "gae",
    "token_rewards",
    "value_loss",
    "whiten",
    "overlong_penalty",
    "truncated",
    "dynamic_sampling_keep",
]
