"""The prod overlay's pod, rendered by kustomize and run by `podman kube play` (image swapped for the
image built here; the Secret and ConfigMap created from the manifests): probes' paths answer, the
security context holds, and the API key decision fails closed in both of its cases."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from service.config import PROJECT_ROOT
from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.live_service import free_port
from tests.helpers.podman import Podman, wait_ready
from training.scenes import place_faces

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")
SECRET = "emotion-service-api-keys"
CONTAINER = "emotion-service-pod-0-emotion-service"
EXIT_CONFIG = 78
KEY = "c2VjcmV0LWtleS0x"  # valid base64 text, so that old podman writes it as it is (see prod_pod)


def prod_pod(image: str, port: int, keys: str | None, podman_version: tuple[int, int]) -> list[dict]:
    """The overlay's Deployment (one replica, the local image, its port published) and ConfigMap, and
    the keys Secret unless `keys` is None."""
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(PROJECT_ROOT / "k8s" / "overlays" / "prod")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in ("Deployment", "ConfigMap")]
    for doc in docs:
        doc["metadata"].pop("namespace", None)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["replicas"] = 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"], container["imagePullPolicy"] = image, "Never"
    container["ports"][0]["hostPort"] = port
    if keys is None:
        return docs
    # Podman before 4.4 checks that a Secret's data is base64, then writes it into the volume undecoded
    # (containers/podman#16625): there, the keys given must be base64 text themselves.
    value = keys if podman_version < (4, 4) else base64.b64encode(keys.encode()).decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "data": {"api-keys": value}}
    return [secret, *docs]


@pytest.fixture(scope="module")
def podman_version(podman: Podman) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", podman("version", "--format", "{{.Client.Version}}").stdout).groups()
    return int(major), int(minor)


@contextmanager
def played(podman: Podman, docs: list[dict], folder: Path) -> Iterator[subprocess.CompletedProcess]:
    manifest = folder / "pod.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    podman("secret", "rm", SECRET, check=False)
    try:
        yield podman("kube", "play", str(manifest), check=False, timeout=300)
    finally:
        podman("kube", "down", str(manifest), check=False, timeout=120)
        podman("secret", "rm", SECRET, check=False)
        podman("volume", "rm", "-f", SECRET, check=False)  # kube play keeps the Secret's volume


def test_the_prod_pod_serves_with_its_keys_and_its_security_context(
    podman: Podman, runtime_image: str, podman_version: tuple[int, int], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with played(podman, prod_pod(runtime_image, port, KEY, podman_version), tmp_path) as play:
        assert play.returncode == 0, play.stderr
        wait_ready(base)
        for probe in ("/healthz", "/readyz"):  # the liveness, startup and readiness probes' paths
            assert httpx.get(f"{base}{probe}").status_code == 200
        assert httpx.get(f"{base}/v1/models").status_code == 401
        photo = jpeg(place_faces(fer_faces("happy", 1), 240, 320, 150, seed=2).image)
        answer = httpx.post(f"{base}/v1/predict", files={"files": ("p.jpg", photo)}, headers={"X-API-Key": KEY})
        assert answer.status_code == 200 and answer.json()["images"][0]["faces"][0]["dominant_emotion"] == "happy"
        inside = podman(
            "exec",
            CONTAINER,
            "sh",
            "-c",
            "id -u; grep CapEff /proc/self/status; touch /app/x 2>/dev/null || echo read-only",
        ).stdout
        uid, capabilities, write = inside.strip().splitlines()
        assert uid == "10001" and capabilities.split()[-1] == "0000000000000000" and write.endswith("read-only")


def test_without_the_secret_the_pod_is_not_started(
    podman: Podman, runtime_image: str, podman_version: tuple[int, int], tmp_path: Path
) -> None:
    with played(podman, prod_pod(runtime_image, free_port(), None, podman_version), tmp_path) as play:
        assert play.returncode != 0 and SECRET in play.stderr
        assert CONTAINER not in podman("ps", "--format", "{{.Names}}").stdout


def test_a_secret_without_keys_stops_the_service_in_one_line(
    podman: Podman, runtime_image: str, podman_version: tuple[int, int], tmp_path: Path
) -> None:
    docs = prod_pod(runtime_image, free_port(), "", podman_version)
    # Kubernetes would restart it again and again (CrashLoopBackOff); once is enough to read how it ended.
    next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    with played(podman, docs, tmp_path) as play:
        assert play.returncode == 0, play.stderr
        deadline = time.monotonic() + 60
        while podman("inspect", CONTAINER, "--format", "{{.State.Running}}").stdout.strip() == "true":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        logs = podman("logs", CONTAINER).stderr + podman("logs", CONTAINER).stdout
        assert podman.exit_code(CONTAINER) == EXIT_CONFIG
        assert "Traceback" not in logs
        (refusal,) = [line for line in logs.splitlines() if "EMOTION_API_KEYS_FILE" in line]
        assert "holds no key; not starting" in refusal
