"""The Dockerfile and docker-compose stack, checked statically on every `make test`; tests/container
builds and runs them for real (`make test-container`)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from service.config import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE = PROJECT_ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent


def stage(name: str) -> str:
    """The Dockerfile's lines from `FROM ... AS name` to the next FROM."""
    return DOCKERFILE.read_text().split(f" AS {name}\n", 1)[1].split("\nFROM ", 1)[0]


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [BIN / "hadolint", "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_image_runs_as_non_root_and_checks_health() -> None:
    text, runtime_stage = DOCKERFILE.read_text(), stage("runtime")
    assert re.search(r"^USER 10001$", runtime_stage, re.M)
    assert "HEALTHCHECK" in runtime_stage and "/healthz" in runtime_stage
    assert "[train" not in text and "COPY training" not in text
    # Ray stays out of the online image: only the batch target installs the extra.
    assert "[batch]" not in stage("build") and "--from=build-batch" not in runtime_stage


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_service_metrics_path() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    config = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    apis = sorted(name for name in compose["services"] if name.startswith("api-"))
    assert len(apis) >= 2
    assert job["static_configs"][0]["targets"] == [f"{name}:8000" for name in apis]


def test_compose_puts_the_instances_behind_the_balancer_with_health_checks() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    balancer = services["balancer"]
    assert "8000:8000" in balancer["ports"]
    assert "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    config = (PROJECT_ROOT / "deploy/haproxy/haproxy.cfg").read_text()
    for index, name in enumerate(sorted(n for n in services if n.startswith("api-")), start=1):
        assert balancer["environment"][f"API_{index}"] == f"{name}:8000"
        assert f'"${{API_{index}}}"' in config
        assert balancer["depends_on"][name]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert "ports" not in services[name]  # reached only through the balancer
        grace = float(services[name]["stop_grace_period"].removesuffix("s"))
        env = services[name]["environment"]
        assert grace > float(env["EMOTION_DRAIN_S"]) + float(env["EMOTION_SHUTDOWN_TIMEOUT_S"])
    promtool = shutil.which("promtool")
    if promtool:
        subprocess.run(
            [promtool, "check", "config", str(PROJECT_ROOT / "deploy/prometheus/prometheus.yml")], check=True
        )


def test_dashboard_queries_only_metrics_the_service_exports(client: TestClient) -> None:
    """Every metric a Grafana panel queries must exist in /metrics, so no panel stays empty."""
    suffixes = {"counter": ["", "_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    exported = set()
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("# TYPE "):  # listed even before a labelled metric has samples
            _, _, name, kind = line.split()
            exported |= {name + suffix for suffix in suffixes.get(kind, [""])}
    dashboard = json.loads((PROJECT_ROOT / "deploy/grafana/dashboards/emotion-service.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"emotion_[a-z_]+", target["expr"])
    }
    assert queried and queried <= exported, queried - exported
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("status", "latency", "faces", "batch size", "queue", "rejected", "live stream", "video"):
        assert topic in titles


@pytest.mark.parametrize("path", ["datasources/prometheus.yml", "dashboards/emotion.yml"])
def test_grafana_provisioning_is_valid_yaml(path: str) -> None:
    assert yaml.safe_load((PROJECT_ROOT / "deploy/grafana/provisioning" / path).read_text())["apiVersion"] == 1
