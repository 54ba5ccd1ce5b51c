"""benchmarks/progress_clock.py: the replay of a finished study's progress summary (spans made here)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from progress_clock import Span, last_invocation, off_by, replay  # noqa: E402

from effdata.study.clock import Cost  # noqa: E402


def _span(start: float, end: float, kind: str = "pretrain", bound: float = 100.0) -> Span:
    return Span(start, end, Cost(bound, kind, 1e5, spent=bound, seconds=end - start))


def test_the_replay_keeps_the_last_invocation_and_says_each_minute_what_the_summary_would_have():
    """Two runs one after the other on one worker, at one pace: the summary's figure is the truth at every
    replayed time (a check that can fail: off by anything but ×1 is a fault in the replay or the clock); a run
    copied from an hour before is not part of the invocation."""
    found = last_invocation([_span(-4000, -3900), _span(0, 100), _span(100, 200)])
    assert [s.start for s in found] == [0, 100]
    rows = replay(found, every=50, workers=1)
    assert [(e, truth) for e, truth, _, _ in rows] == [(50, 150), (100, 100), (150, 50)]
    assert [now for _, _, now, _ in rows] == pytest.approx([150, 100, 50])
    assert off_by([(e, t, now) for e, t, now, _ in rows])[:2] == pytest.approx((1.0, 1.0))


def test_the_old_clock_counted_a_length_search_at_its_bound():
    """A pretraining then a fine-tune whose bound is ten times its spending: the old clock (every run at its bound)
    says far more than the truth while the pretraining runs; the summary now says the truth within the prior's
    share (a fine-tune at 2.8 times a pretraining's seconds per FLOP, as measured)."""
    pre = _span(0, 100)
    tune = Span(100, 128, Cost(1000.0, "finetune", 1e5, spent=10.0, seconds=28.0))
    rows = replay([pre, tune], every=50, workers=1)
    elapsed, truth, now, old = rows[0]
    assert (elapsed, truth) == (50, 78)
    assert old == pytest.approx(50 * 1050 / 50) and now == pytest.approx(50 + 1000 * 0.01 * 2.8)
