"""Signed webhook deliveries, as the Standard Webhooks specification has them, to SSRF-safe targets.

Each event is signed with HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}" for every
secret configured (`whsec_<base64>`, several during a rotation), and sent with `webhook-id` (the
same on every retry), `webhook-timestamp` and `webhook-signature`. Only a 2xx answer delivers;
410 stops the retries; `Retry-After` pushes the next attempt later, up to the schedule's longest
wait. The target's address is resolved and checked at delivery time, and the request goes to that
very address (the TLS name stays the host's), so a name that resolves to a private address later
(DNS rebinding) is refused too.

No receiver can hold a sender: an attempt, from resolving the name to the answer's headers, has one
deadline, and the answer's body is never read.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import ipaddress
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx

from service.jobs.database import utcnow

SECRET_PREFIX = "whsec_"
# IPv6 ranges that carry an IPv4 address inside (NAT64, 6to4, Teredo, IPv4-compatible, -mapped and
# -translated): wherever the network translates them, they reach that IPv4 address, private or not.
EMBEDDED_IPV4 = tuple(
    ipaddress.ip_network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96")
)


class UnsafeTarget(Exception):
    """A callback URL that is not http(s), or that resolves to an address webhooks may not reach."""


def secret_keys(secrets: str) -> list[bytes]:
    """The signing keys of `EMOTION_WEBHOOK_SECRET`: space-separated `whsec_<base64>` secrets."""
    return [base64.b64decode(s.removeprefix(SECRET_PREFIX)) for s in secrets.split() if s]


def signature_header(keys: list[bytes], message_id: str, timestamp: int, body: str) -> str:
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or UnsafeTarget (a URL that does not parse included)."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
        credentials = parts.username or parts.password
    except ValueError:  # a bad port or a broken IPv6 literal
        raise UnsafeTarget("callback_url is not a valid URL") from None
    if scheme not in ("http", "https") or not host:
        raise UnsafeTarget("callback_url must be an http or https URL")
    if credentials:
        raise UnsafeTarget("callback_url must not carry credentials")
    return scheme, host, port or (443 if scheme == "https" else 80)


def without_query(url: str) -> str:
    """A callback URL fit for logs: its query and fragment may hold the receiver's tokens."""
    return url.split("?", 1)[0].split("#", 1)[0]


def target_of(url: str) -> str:
    """The receiver a URL names, scheme://host:port: deliveries to one target are limited together."""
    try:
        scheme, host, port = check_url(url)
    except UnsafeTarget:
        return "-"
    return f"{scheme}://{host.lower()}:{port}"


def check_addresses(host: str, addresses: list[str], allow_private: bool) -> str:
    """The first address, when every one is public (or private targets are allowed); else UnsafeTarget."""
    parsed = [ipaddress.ip_address(address.split("%", 1)[0]) for address in addresses]
    if not allow_private:
        for address in parsed:
            embeds_ipv4 = address.version == 6 and any(address in net for net in EMBEDDED_IPV4)
            if not address.is_global or address.is_multicast or embeds_ipv4:
                raise UnsafeTarget(f"{host} resolves to {address}, which webhooks may not reach")
    return str(parsed[0])


async def safe_address(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: every address the host resolves to must be public (unless allowed)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):  # ValueError: a name IDNA cannot encode (an empty or 64-character label)
        raise UnsafeTarget(f"{host} does not resolve") from None
    return check_addresses(host, [info[4][0] for info in infos], allow_private)


def retry_after_seconds(value: str) -> float | None:
    """Retry-After as seconds: ASCII digits or an HTTP date; None for anything else."""
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,12}", value):
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


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
    timeout_s: float  # the whole attempt: resolve, connect, send, and the answer's headers

    async def send(self, url: str, message_id: str, body: str) -> Attempt:
        """One attempt, never longer than the timeout; any failure is an attempt that did not deliver."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._attempt(url, message_id, body)
        except (TimeoutError, UnsafeTarget, httpx.HTTPError):
            return Attempt(None, delivered=False)

    async def _attempt(self, url: str, message_id: str, body: str) -> Attempt:
        scheme, host, port = check_url(url)
        address = await safe_address(host, port, self.allow_private)
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
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            request = client.build_request(
                "POST", pinned, content=body, headers=headers, extensions={"sni_hostname": host}
            )
            answer = await client.send(request, stream=True)  # the status and headers; the body stays unread
            await answer.aclose()
        return Attempt(
            answer.status_code,
            delivered=200 <= answer.status_code < 300,
            retry_after_s=retry_after_seconds(answer.headers.get("retry-after", "")),
            give_up=answer.status_code == 410,
        )


def next_attempt(retry_delays_s: Sequence[float], attempts_made: int, attempt: Attempt) -> datetime | None:
    """When to try again after `attempts_made` attempts (the one just made included), or None: delivered,
    refused for good (410), or every retry of the schedule used. A receiver's Retry-After can push an
    attempt later, but never past the schedule's longest wait."""
    if attempt.delivered or attempt.give_up or attempts_made > len(retry_delays_s):
        return None
    asked = min(attempt.retry_after_s or 0.0, max(retry_delays_s))
    wait = max(retry_delays_s[attempts_made - 1], asked)
    return utcnow() + timedelta(seconds=wait)
