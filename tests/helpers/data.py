"""Where the shared data lives, and a skip with the reason when it is not there.

A checkout without `../shared` still runs every test that needs no data: a test (or a whole
module, when called at import) that needs FER-2013 or the clips is skipped with where it looked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared" / "data"
FER2013 = Path(os.environ.get("FER2013_DIR", SHARED / "fer2013"))
VIDEOS = Path(os.environ.get("VIDEOS_DIR", SHARED / "videos"))


def fer2013_dir() -> Path:
    """FER-2013's folder (train/ and test/ of class folders), or a skip."""
    if not (FER2013 / "test").is_dir():
        pytest.skip(f"needs FER-2013 at {FER2013} (set FER2013_DIR)", allow_module_level=True)
    return FER2013


def videos_dir() -> Path:
    """The shared clips' folder, or a skip."""
    if not VIDEOS.is_dir():
        pytest.skip(f"needs the shared clips at {VIDEOS} (set VIDEOS_DIR)", allow_module_level=True)
    return VIDEOS
