"""Checking that a webhook came from the service: Standard Webhooks signatures, verified by the
specification's reference library, with the secrets of a rotation tried in turn."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from emotion_client.types import WebhookEvent


def verify_webhook(body: bytes, headers: Mapping[str, str], secrets: str | Sequence[str]) -> WebhookEvent:
    """The event, once its signature and timestamp (within 5 minutes) check out with one of the secrets
    (the service's EMOTION_WEBHOOK_SECRET values, `whsec_...`); WebhookVerificationError otherwise.
    Pass the raw body, before any JSON parsing, and the request's headers."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        try:
            Webhook(secret).verify(body, lowered)
        except WebhookVerificationError:
            continue
        return json.loads(body)
    raise WebhookVerificationError("no secret verifies this webhook")
