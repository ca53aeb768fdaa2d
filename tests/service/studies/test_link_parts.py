"""The pieces of a participant link alone: its signed token and byte ranges of the ad."""

from __future__ import annotations

import pytest

from service.config import LinkSettings
from service.studies.links import LinkRefused, LinkSigner
from service.studies.stimulus import RangeNotSatisfiable, byte_range

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def signer(*secrets: str) -> LinkSigner:
    return LinkSigner(LinkSettings(secrets, 600, 30.0, 168.0, "emotion-fast", 3.0))


def test_a_token_names_its_link_and_study_and_survives_a_rotation() -> None:
    token = signer("old").token("link1", "study1")
    assert signer("old").verify(token) == ("link1", "study1")
    assert signer("new", "old").verify(token) == ("link1", "study1")  # rotated: old links keep working
    with pytest.raises(LinkRefused):
        signer("new").verify(token)  # the old secret retired


@pytest.mark.parametrize("tamper", ["payload", "mac", "shape", "junk"])
def test_a_forged_token_is_refused(tamper: str) -> None:
    payload, mac = signer("s").token("link1", "study1").split(".")
    other_payload = signer("s").token("link2", "study1").split(".")[0]
    forged = {
        "payload": f"{other_payload}.{mac}",
        "mac": f"{payload}.{mac[::-1]}",
        "shape": payload,
        "junk": "%%%.###",
    }[tamper]
    with pytest.raises(LinkRefused):
        signer("s").verify(forged)


def test_without_a_secret_links_are_signed_with_one_made_at_start(caplog: pytest.LogCaptureFixture) -> None:
    first, second = signer(), signer()
    assert "EMOTION_LINK_SECRET is not set" in caplog.text
    with pytest.raises(LinkRefused):
        second.verify(first.token("l", "s"))  # another process (a restart) has another secret


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("items=0-5", None),  # not understood: the whole body, as HTTP allows
        ("bytes=0-1,5-9", None),
    ],
)
def test_byte_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-2"])
def test_ranges_past_the_end_are_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 1000)
