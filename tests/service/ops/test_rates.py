"""Request rates per key: a burst up to the rate, then a refusal that says when to come back."""

from __future__ import annotations

import pytest

from service.ops.rates import RateLimited, RateLimiter

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def test_a_link_gets_its_rate_and_a_flood_is_told_when_to_come_back() -> None:
    rates = RateLimiter(per_s=1, burst=60, refusal="too many requests from this link")
    for _ in range(60):
        rates.take("a", now=0.0)
    with pytest.raises(RateLimited) as limited:
        rates.take("a", now=0.0)
    assert limited.value.retry_after_s == 1 and str(limited.value) == "too many requests from this link"
    rates.take("b", now=0.0)  # another link is not slowed
    rates.take("a", now=1.0)  # one token back a second later
    crowded = RateLimiter(per_s=1, burst=60, refusal="", most_keys=2)
    for key in ("a", "b", "c"):
        crowded.take(key, now=0.0)
    assert list(crowded.buckets) == ["b", "c"]
