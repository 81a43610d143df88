"""``python -m grpo_core.train``: the command line of the trainer (:mod:`grpo_core.training.cli`)."""

from .training.cli import main

if __name__ == "__main__":
    main()
