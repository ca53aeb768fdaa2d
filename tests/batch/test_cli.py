"""emotion-batch without its extra: one line naming the install command, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_RAY = (
    "import sys; sys.modules['ray'] = None; sys.argv = ['emotion-batch', 'score', 'in', 'out']; import batch.cli"
)


def test_without_the_batch_extra_it_says_how_to_install_it() -> None:
    run = subprocess.run([sys.executable, "-c", WITHOUT_RAY], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["emotion-batch needs ray: pip install 'emotion-service[batch]'"]
