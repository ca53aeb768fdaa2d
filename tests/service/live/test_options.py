"""A live stream's first message, parsed alone: what it sets, and the 1008 every bad one gets."""

from __future__ import annotations

import json

import pytest

from service.live.stream import POLICY_VIOLATION, StreamClosed, StreamOptions, parse_options

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def test_defaults_and_every_option() -> None:
    assert parse_options("{}", 1.0) == StreamOptions(1.0)
    assert parse_options('{"smoothing": 0, "max_fps": 5, "api_key": "k"}', 1.0) == StreamOptions(0.0, 5.0, "k")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[" * 100_000,  # nested past Python's recursion limit
        "[]",
        '"text"',
        '{"unknown": 1}',
        '{"smoothing": -1}',
        '{"smoothing": 61}',
        '{"smoothing": true}',
        '{"max_fps": 0}',
        '{"max_fps": "fast"}',
        '{"api_key": 7}',
    ],
)
def test_bad_first_messages_close_with_policy_violation(text: str) -> None:
    with pytest.raises(StreamClosed) as closed:
        parse_options(text, 1.0)
    assert closed.value.code == POLICY_VIOLATION


def test_a_key_utf8_cannot_encode_is_kept_as_text_for_the_key_check() -> None:
    options = parse_options(json.dumps({"api_key": "\ud800"}), 1.0)
    assert options.api_key == "\ud800"
