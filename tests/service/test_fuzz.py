"""The mutation fuzzer (tests.helpers.fuzz), bounded in time: real mutated media against a real service."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.fuzz import fuzz

# Seconds of fuzzing in the suite; a long run is `python -m tests.helpers.fuzz --inputs 10000`.
FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "75"))


def test_mutated_media_never_harms_the_service() -> None:
    artefacts = Path(os.environ.get("FUZZ_ARTEFACTS", "fuzz-failures"))
    report = fuzz(max_inputs=100_000, max_seconds=FUZZ_SECONDS, artefacts=artefacts)
    assert {"photo", "clip", "frame", "job", "study"} <= set(report.by_kind)
    assert report.rss_warm_mb is not None, f"only {report.inputs} inputs: too few to judge memory growth"
    assert not report.findings, f"kept in {artefacts}: {[f.what for f in report.findings]}"
