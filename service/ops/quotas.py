"""What one API key may use: requests a second (a token bucket per key) here; queued jobs and stored
upload bytes are counted where jobs are stored (service.jobs.store). Quotas are per key: a service
without keys has no tenants to keep apart and none apply. Refusals are counted per key id (a digest
prefix, never the key), for the first MOST_KEY_LABELS keys seen; later ones share one label, so the
metric stays bounded however many keys there are."""

from __future__ import annotations

from service.config import QuotaSettings
from service.ops.metrics import Metrics
from service.ops.rates import RateLimited, RateLimiter

MOST_KEY_LABELS = 100
NO_KEYS = "-"  # the owner of every request when the service has no API keys


class KeyQuotas:
    def __init__(self, quotas: QuotaSettings, metrics: Metrics) -> None:
        self.metrics = metrics
        per_s = quotas.requests_per_s
        refusal = f"over this key's {per_s:g} requests a second (EMOTION_QUOTA_REQUESTS_PER_S); retry shortly"
        self.rates = RateLimiter(per_s, max(1.0, 2 * per_s), refusal) if per_s else None
        self.labels: dict[str, str] = {}

    def take_request(self, owner: str) -> None:
        """One request of this key's rate; RateLimited past it."""
        if self.rates is None or owner == NO_KEYS:
            return
        try:
            self.rates.take(owner)
        except RateLimited:
            self.refused(owner, "requests_per_s")
            raise

    def refused(self, owner: str, limit: str) -> None:
        self.metrics.quota_refusals.labels(self.key_label(owner), limit).inc()

    def key_label(self, owner: str) -> str:
        if owner not in self.labels and len(self.labels) < MOST_KEY_LABELS:
            self.labels[owner] = owner[:8]
        return self.labels.get(owner, "other")
