"""The reconnection backoff (socket.io-client's Backoff, with an injected random).

The same schedules are checked against socket.io-client itself in
tests/interop/test_codec_crossimpl.py.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triosio._proto.backoff import Backoff


def test_no_jitter_doubles_up_to_the_cap() -> None:
    backoff = Backoff(min_delay=1.0, max_delay=5.0, jitter=0)
    assert [backoff.duration() for _ in range(6)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert backoff.attempts == 6


def test_reset_starts_again() -> None:
    backoff = Backoff(min_delay=0.5, max_delay=60, jitter=0)
    assert [backoff.duration() for _ in range(3)] == [0.5, 1.0, 2.0]
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.duration() == 0.5


def test_one_draw_picks_size_and_direction() -> None:
    # rand 0.25: floor(2.5) is even, so down by floor(0.25 * 0.5 * 1000) = 125 ms;
    # rand 0.35: floor(3.5) is odd, so up by floor(0.35 * 0.5 * 2000) = 350 ms.
    draws = iter([0.25, 0.35])
    backoff = Backoff(min_delay=1.0, max_delay=10.0, jitter=0.5, random=lambda: next(draws))
    assert backoff.duration() == 0.875
    assert backoff.duration() == 2.35


def test_jitter_applies_before_the_cap() -> None:
    # Attempt 3 is 8000 ms; rand 0.05 (floor(0.5) = 0, even) takes it down by
    # floor(0.05 * 0.5 * 8000) = 200 to 7800, still above the 5000 ms cap.
    backoff = Backoff(min_delay=1.0, max_delay=5.0, jitter=0.5, random=lambda: 0.05)
    backoff.attempts = 3
    assert backoff.duration() == 5.0
    # Attempt 4 is 16000 ms; rand 0.8 (8, even) takes it down by 6400: under the cap.
    backoff = Backoff(min_delay=1.0, max_delay=10.0, jitter=0.5, random=lambda: 0.8)
    backoff.attempts = 4
    assert backoff.duration() == 9.6


def test_result_truncated_to_whole_milliseconds() -> None:
    backoff = Backoff(min_delay=0.0015, max_delay=1.0, jitter=0)
    assert backoff.duration() == 0.001


@given(
    st.floats(0.001, 10),
    st.floats(0.001, 100),
    st.floats(0, 1),
    st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=30),
)
@settings(max_examples=200, deadline=None)
def test_delays_stay_within_the_jitter_band_and_the_cap(
    low: float, high: float, jitter: float, draws: list[float]
) -> None:
    source = itertools.cycle(draws)
    backoff = Backoff(min_delay=low, max_delay=high, jitter=jitter, random=lambda: next(source))
    for attempt in range(len(draws)):
        base = low * 1000 * 2**attempt
        delay_ms = backoff.duration() * 1000
        assert delay_ms <= high * 1000 + 1e-6
        assert delay_ms >= min(base * (1 - jitter), high * 1000) - 1.001


def test_retrying_forever_does_not_overflow() -> None:
    # socket.io-client retries forever by default; 2**1100 is not a float.
    backoff = Backoff(min_delay=1.0, max_delay=5.0, jitter=0.5, random=lambda: 0.7)
    delays = [backoff.duration() for _ in range(2000)]
    assert delays[-1] == 5.0
    assert all(0 < d <= 5.0 for d in delays)
    assert Backoff(min_delay=0, max_delay=5, jitter=0.5).duration() == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"min_delay": -1}, {"max_delay": -1}, {"jitter": -0.1}, {"jitter": 1.5}],
)
def test_refuses_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        Backoff(**kwargs)
