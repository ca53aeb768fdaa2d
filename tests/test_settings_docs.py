"""docs/api.md's settings table against the settings themselves: every field listed once, no stale
rows, and each plain default as the code has it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.config import PROJECT_ROOT, Settings

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def documented() -> dict[str, str | None]:
    """Each variable in the table and its documented default (None where a row names several)."""
    text = (PROJECT_ROOT / "docs" / "api.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str | None] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`EMOTION_"):
            continue
        names = re.findall(r"`(EMOTION_[A-Z0-9_]+)`", cells[0])
        defaults = re.findall(r"`([^`]*)`", cells[1])
        for i, name in enumerate(names):
            assert name not in rows, f"{name} is in the table twice"
            rows[name] = defaults[i] if len(defaults) == len(names) else None
    return rows


def plain(value: object) -> str | None:
    """A default as the table writes it; None for defaults the table describes in words (paths, secrets)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(float(value))
    if isinstance(value, list):
        return ",".join(plain(item) or "" for item in value)
    if isinstance(value, str) and value and "/" not in value:
        return value
    return None


def numbers_as_floats(text: str) -> str:
    """2, 2.0 and 2.00 alike: every number in a comma-separated default written as a float."""
    try:
        return ",".join(repr(float(item)) for item in text.split(","))
    except ValueError:
        return text


def test_every_setting_is_in_the_table_and_every_row_is_a_setting() -> None:
    fields = {f"EMOTION_{name.upper()}" for name in Settings.model_fields}
    rows = set(documented())
    assert not fields - rows, f"settings missing from docs/api.md: {sorted(fields - rows)}"
    assert not rows - fields, f"rows of docs/api.md that are no setting: {sorted(rows - fields)}"


def test_documented_defaults_are_the_code_s() -> None:
    rows = documented()
    wrong = []
    for name, field in Settings.model_fields.items():
        shown, default = rows.get(f"EMOTION_{name.upper()}"), field.default
        expected = None if isinstance(default, SecretStr | Path) else plain(default)
        if shown is not None and expected is not None and numbers_as_floats(shown) != expected:
            wrong.append(f"EMOTION_{name.upper()}: table {shown!r}, code {expected!r}")
    assert not wrong, "; ".join(wrong)
