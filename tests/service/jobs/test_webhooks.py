"""Webhook signatures against the Standard Webhooks reference verifier, the retry schedule, and the
address check that keeps webhooks off private networks."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from service.jobs.database import utcnow
from service.jobs.webhooks import (
    Attempt,
    UnsafeTarget,
    WebhookSender,
    check_addresses,
    check_url,
    next_attempt,
    retry_after_seconds,
    safe_address,
    secret_keys,
    signature_header,
    without_query,
)
from tests.helpers.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers

OLD = "whsec_" + base64.b64encode(b"the secret being rotated out....").decode()
NEW = "whsec_" + base64.b64encode(b"the secret rotated in, 32 bytes.").decode()


@pytest.mark.parametrize("secrets", [NEW, f"{OLD} {NEW}", f"{NEW} {OLD}"])
def test_signatures_verify_with_the_reference_verifier_during_a_rotation(secrets: str) -> None:
    body = json.dumps({"type": "job.succeeded", "job_id": "abc"})
    timestamp = int(utcnow().timestamp())
    headers = {
        "webhook-id": "msg_abc",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secret_keys(secrets), "msg_abc", timestamp, body),
    }
    assert Webhook(NEW).verify(body, headers) == {"type": "job.succeeded", "job_id": "abc"}
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(body.replace("abc", "abd"), headers)


def test_retries_follow_the_schedule_and_retry_after_and_stop() -> None:
    delays = [5, 300]
    failed = Attempt(500, delivered=False)
    first = next_attempt(delays, 1, failed)
    assert first is not None and abs((first - utcnow()) - timedelta(seconds=5)) < timedelta(seconds=1)
    later = next_attempt(delays, 1, Attempt(503, delivered=False, retry_after_s=120))
    assert later is not None and (later - utcnow()) > timedelta(seconds=100)
    assert next_attempt(delays, 3, failed) is None  # every retry used
    assert next_attempt(delays, 1, Attempt(200, delivered=True)) is None
    assert next_attempt(delays, 1, Attempt(410, delivered=False, give_up=True)) is None


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "::1", "0.0.0.0"]
)
def test_private_loopback_and_link_local_addresses_are_refused(host: str) -> None:
    with pytest.raises(UnsafeTarget):
        asyncio.run(safe_address(host, 80, allow_private=False))
    assert asyncio.run(safe_address(host, 80, allow_private=True))


def test_public_addresses_pass_and_urls_must_be_plain_http() -> None:
    assert asyncio.run(safe_address("93.184.216.34", 443, allow_private=False)) == "93.184.216.34"
    assert check_url("https://hooks.example.com/emotion") == ("https", "hooks.example.com", 443)
    for url in ("ftp://example.com/x", "https://user:pass@example.com/x", "http:///nohost", "javascript:alert(1)"):
        with pytest.raises(UnsafeTarget):
            check_url(url)


def test_a_delivery_to_a_private_address_is_refused_at_send_time() -> None:
    """The address is checked when each attempt is made, not only at submission (DNS rebinding)."""
    with webhook_receiver() as receiver:
        refused = asyncio.run(WebhookSender(NEW, allow_private=False, timeout_s=5).send(receiver.url, "msg_1", "{}"))
        allowed = asyncio.run(WebhookSender(NEW, allow_private=True, timeout_s=5).send(receiver.url, "msg_1", "{}"))
    assert (refused.status, refused.delivered) == (None, False)
    assert (allowed.status, allowed.delivered) == (200, True) and len(receiver.deliveries) == 1


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::5db8:d822",  # NAT64 of a public address: still refused, the prefix is translation
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "::a00:1",  # IPv4-compatible
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::ffff:0:a00:1",  # IPv4-translated
    ],
)
def test_ipv6_forms_that_embed_an_ipv4_address_are_refused(address: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_addresses("hooks.example.com", [address], allow_private=False)
    assert check_addresses("hooks.example.com", [address], allow_private=True) == str(ipaddress.ip_address(address))


def test_a_public_ipv6_address_passes() -> None:
    assert check_addresses("hooks.example.com", ["2606:2800:220:1::1"], allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["http://a..b/", "http://example.com:99999/", "http://example.com:abc/", "http://[::1/", "http://" + "a" * 64],
)
def test_urls_that_do_not_parse_or_resolve_are_unsafe_not_errors(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        _, host, port = check_url(url)
        asyncio.run(safe_address(host, port, allow_private=True))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("999999999999", 999999999999.0),
        ("١٢٣", None),
        ("²", None),
        ("-5", None),
        ("1e3", None),
        ("", None),
    ],
)
def test_retry_after_is_parsed_defensively(header: str, expected: float | None) -> None:
    assert retry_after_seconds(header) == expected


def test_retry_after_as_an_http_date_and_clamped_to_the_schedule() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 80 < retry_after_seconds(soon) <= 90
    huge = next_attempt([5, 300], 1, Attempt(503, delivered=False, retry_after_s=999999999999.0))
    assert huge is not None and (huge - utcnow()) <= timedelta(seconds=301)


def test_logged_callback_urls_lose_their_query() -> None:
    assert without_query("https://hooks.example.com/in?token=s3cret#x") == "https://hooks.example.com/in"
