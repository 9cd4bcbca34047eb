"""io_uring is judged by the yardstick epoll was: claim 2's test, claim 3's flatness."""

from __future__ import annotations

from bench.analyse import rules
from bench.analyse.rules import uring


def test_io_uring_uses_claim_2s_metric_margin_and_confidence() -> None:
    assert uring.URING_METRIC == rules.CLAIM2_METRIC
    assert uring.URING_MARGIN == rules.EFFECT_MARGIN
    assert uring.URING_CONFIDENCE == rules.EQUIVALENCE_CONFIDENCE
    assert rules.MARGIN_TEXT in rules.URING_RULES["uring_cell"]
    assert rules.MARGIN_TEXT in rules.RULES["equivalence"]


def test_io_uring_flatness_quotes_claim_3s_tolerance() -> None:
    bound = f"+{rules.TOLERANCE_REL_INCREASE:.0%}"
    assert bound in rules.URING_RULES["uring_flat"]
    assert bound in rules.RULES["flat"]


def test_every_status_word_of_the_question_is_in_its_rule() -> None:
    text = rules.URING_RULES["uring"]
    for word in (uring.URING_YES, uring.URING_NO, uring.URING_PARTLY, rules.INCONCLUSIVE):
        assert word in text
    assert uring.URING_BETTER in rules.URING_RULES["uring_cell"]
