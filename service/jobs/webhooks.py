"""Signed webhook deliveries, as the Standard Webhooks specification has them, to SSRF-safe targets.

Each event is signed with HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}" for every
secret configured (`whsec_<base64>`, several during a rotation), and sent with `webhook-id` (the
same on every retry), `webhook-timestamp` and `webhook-signature`. Only a 2xx answer delivers;
410 stops the retries; `Retry-After` pushes the next attempt later. The target's address is
resolved and checked at delivery time, and the request goes to that very address (the TLS name
stays the host's), so a name that resolves to a private address later (DNS rebinding) is refused too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx

from service.jobs.database import utcnow

SECRET_PREFIX = "whsec_"


class UnsafeTarget(Exception):
    """A callback URL that is not http(s), or that resolves to an address webhooks may not reach."""


def secret_keys(secrets: str) -> list[bytes]:
    """The signing keys of `EMOTION_WEBHOOK_SECRET`: space-separated `whsec_<base64>` secrets."""
    return [base64.b64decode(s.removeprefix(SECRET_PREFIX)) for s in secrets.split() if s]


def signature_header(keys: list[bytes], message_id: str, timestamp: int, body: str) -> str:
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or UnsafeTarget."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("callback_url must be an http or https URL")
    if parts.username or parts.password:
        raise UnsafeTarget("callback_url must not carry credentials")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def safe_address(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: every address the host resolves to must be public (unless allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise UnsafeTarget(f"{host} does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not address.is_global or address.is_multicast:
                raise UnsafeTarget(f"{host} resolves to {address}, which webhooks may not reach")
    return str(addresses[0])


@dataclass(frozen=True)
class Attempt:
    status: int | None  # the HTTP status, or None when no answer came
    delivered: bool
    retry_after_s: float | None = None
    give_up: bool = False


@dataclass(frozen=True)
class WebhookSender:
    secrets: str
    allow_private: bool
    timeout_s: float

    def send(self, url: str, message_id: str, body: str) -> Attempt:
        try:
            scheme, host, port = check_url(url)
            address = safe_address(host, port, self.allow_private)
        except UnsafeTarget:
            return Attempt(None, delivered=False)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secret_keys(self.secrets), message_id, timestamp, body),
            "host": host if port in (80, 443) else f"{host}:{port}",
        }
        parts = urlsplit(url)
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        pinned = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        try:
            with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
                request = client.build_request(
                    "POST", pinned, content=body, headers=headers, extensions={"sni_hostname": host}
                )
                answer = client.send(request)
        except httpx.HTTPError:
            return Attempt(None, delivered=False)
        retry_after = answer.headers.get("retry-after", "")
        return Attempt(
            answer.status_code,
            delivered=200 <= answer.status_code < 300,
            retry_after_s=float(retry_after) if retry_after.isdigit() else None,
            give_up=answer.status_code == 410,
        )


def next_attempt(retry_delays_s: list[float], attempts_made: int, attempt: Attempt) -> datetime | None:
    """When to try again after `attempts_made` attempts (the one just made included), or None: delivered,
    refused for good (410), or every retry of the schedule used."""
    if attempt.delivered or attempt.give_up or attempts_made > len(retry_delays_s):
        return None
    wait = max(retry_delays_s[attempts_made - 1], attempt.retry_after_s or 0.0)
    return utcnow() + timedelta(seconds=wait)
