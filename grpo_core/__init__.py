"""grpo_core: the GRPO math the book imports."""
