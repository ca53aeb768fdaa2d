"""The README and docs: every relative link resolving, the examples real (the settings table has its own
test, tests/test_settings_docs.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT
from service.schemas import PredictResponse, VideoResponse
from tests.helpers.data import videos_dir
from tests.helpers.live_service import running_service

README = PROJECT_ROOT / "README.md"
DOCS = sorted((PROJECT_ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    text = page.read_text()
    broken = []
    for target, anchor in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        path = (page.parent / target).resolve()
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md":
            headings = {heading_anchor(h) for h in re.findall(r"^#+ (.+)$", path.read_text(), re.M)}
            if anchor[1:] not in headings:
                broken.append(target + anchor)
    assert not broken, f"{page.name}: {broken}"


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def json_blocks(text: str) -> list[dict]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_the_readme_examples_are_real_answers_in_the_current_schema() -> None:
    photo, clip = json_blocks(README.read_text())
    PredictResponse.model_validate(photo)
    VideoResponse.model_validate(clip)
    assert photo["models"]["emotion"] == clip["models"]["emotion"] == {"name": "emotion", "version": "7"}


def test_the_readme_stream_client_runs_against_the_service(tmp_path: Path) -> None:
    code = re.search(r"<!-- stream-client:start -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "ws://127.0.0.1:8000/v1/stream" in code  # the address `make serve` listens on
    with running_service() as service:
        script = tmp_path / "client.py"
        script.write_text(code.replace("127.0.0.1:8000", service.base.removeprefix("http://")))
        clip = videos_dir() / "asl-thanks.mkv"
        result = subprocess.run([sys.executable, str(script), str(clip)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 51  # one person in each of the clip's 51 frames
    assert all(re.fullmatch(r"frame \d+: person 1 \w+", line) for line in lines)
