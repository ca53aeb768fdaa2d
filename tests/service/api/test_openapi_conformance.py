"""The OpenAPI document against the live service, as an integrator's tooling would check it: every
check of schemathesis (`st run -c all`), with keys on (60 examples per operation) and off (20: the same
operations, whose answers differ only in needing no key). A failure
prints schemathesis's report, with a curl line that reproduces it. The exceptions, each with its
reason, are in schemathesis.toml beside this file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.live_service import running_service

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = "20261206"  # fixed, so a failure repeats; run `st` by hand with other seeds to look further
KEY = "conformance-key"


@pytest.mark.parametrize(("keys_on", "examples"), [(True, 60), (False, 20)], ids=["keys-on", "keys-off"])
def test_the_live_service_conforms_to_its_own_schema(keys_on: bool, examples: int, tmp_path: Path) -> None:
    settings = {"database_url": f"sqlite:///{tmp_path}/jobs.db", "media_store": tmp_path / "media"}
    if keys_on:  # callbacks then run their real checks instead of webhooks_not_configured
        settings |= {"api_keys": KEY, "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
    with running_service(**settings) as service:
        command = [str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "--no-color", "run"]
        command += [f"{service.base}/openapi.json", "--checks", "all", "--max-examples", str(examples), "--seed", SEED]
        command += ["--header", f"X-API-Key: {KEY}"] if keys_on else []
        run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache
        document = httpx.get(f"{service.base}/openapi.json").json()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    operations = sum(len(methods) for methods in document["paths"].values())
    assert f"Tested: {operations}" in run.stdout, run.stdout[-2000:]  # every operation, none skipped
