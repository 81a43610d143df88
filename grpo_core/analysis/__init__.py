"""The chapters' experiments: everything the book measures that a training job does not need.

- :mod:`~grpo_core.analysis.rewards`: reward distributions that sample ``[B, G]`` rewards;
- :mod:`~grpo_core.analysis.policy_gradient`: exact and sampled policy gradients of a small
  softmax policy (the objective chapter);
- :mod:`~grpo_core.analysis.kl_analysis`: exact KL, estimator moments, the KL-regularised optimum;
- :mod:`~grpo_core.analysis.variance`: advantage and gradient-estimator variance, GAE's variance;
- :mod:`~grpo_core.analysis.collapse`: signal-collapse measurements;
- :mod:`~grpo_core.analysis.toy`, :mod:`~grpo_core.analysis.toy_prompts`: tabular softmax policies
  (one prompt; many prompts of mixed difficulty) trained by :func:`grpo_core.grpo_loss`.

Torch and NumPy only: no plotting, no widgets, no files.
"""
