"""Last in the run: the random batches did exercise what the comparisons are meant to cover (a
comparison where no clip, clamp or empty answer ever occurred would prove less than it claims)."""

from conformance_harness import RECORDER

NEEDED = [
    "trl: batches with a fully masked answer",
    "trl: batches with a zero-spread group (advantage 0)",
    "trl: batches where the clip (or cap) took gradients away",
    "verl: batches with a fully masked answer",
    "verl: batches where the clip (or cap) took gradients away",
    "verl: batches where the dual clip acted",
    "verl: batches with |log-ratio| > 20 at a real token (verl's clamp)",
    "verl: batches where k3 exceeds 10 (verl clamps it there, TRL does not)",
    "advantages: batches with a zero-spread group",
]


def test_the_batches_exercised_every_case():
    if not RECORDER.rows:  # this file alone: nothing ran before it
        return
    missing = [k for k in NEEDED if RECORDER.events.get(k, 0) == 0]
    assert not missing, f"no batch exercised {missing}; counts: {RECORDER.events}"
