"""The kustomize overlays and the batch RayJob render, validate against their schemas, and match the app."""

import json
import shutil
import subprocess

import jsonschema
import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text

from batch.cli import parse
from service.config import PROJECT_ROOT, Settings
from service.jobs.database import open_database
from tests.helpers.postgres import postgres_server

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")
OVERLAYS = ["dev", "prod"]


def render(overlay: str, folder: str = "k8s/overlays") -> list[dict]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(PROJECT_ROOT / folder / overlay)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(overlay: str) -> None:
    docs = render(overlay)
    assert {d["kind"] for d in docs} == {
        "ConfigMap",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ports_and_settings_match_the_app(overlay: str, client: TestClient) -> None:
    objects = by_kind(render(overlay))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = objects["ConfigMap"]["data"]
    assert set(config) <= {f"EMOTION_{name.upper()}" for name in Settings.model_fields}
    assert container["ports"][0]["containerPort"] == int(config["EMOTION_PORT"])
    assert container["envFrom"][0]["configMapRef"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert client.get(path).status_code == 200, path
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert client.get(annotations["prometheus.io/path"]).status_code == 200
    assert annotations["prometheus.io/port"] == config["EMOTION_PORT"]
    service_port = objects["Service"]["spec"]["ports"][0]
    assert service_port["targetPort"] == container["ports"][0]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(overlay: str) -> None:
    pod = by_kind(render(overlay))["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == ["ALL"]
    assert security["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]


def test_prod_reads_api_keys_from_the_mounted_secret() -> None:
    objects = by_kind(render("prod"))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    key_file = objects["ConfigMap"]["data"]["EMOTION_API_KEYS_FILE"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-keys"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "api-keys"]
    assert key_file.startswith(mount["mountPath"] + "/")
    assert volume["secret"]["secretName"] == "emotion-service-api-keys"
    assert volume["secret"]["optional"] is False  # fail closed: no Secret, no pod
    assert "EMOTION_API_KEYS_FILE" not in by_kind(render("dev"))["ConfigMap"]["data"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_covers_the_drain_and_the_shutdown(overlay: str) -> None:
    objects = by_kind(render(overlay))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    config = objects["ConfigMap"]["data"]
    drain, shutdown = float(config["EMOTION_DRAIN_S"]), float(config["EMOTION_SHUTDOWN_TIMEOUT_S"])
    # Readiness fails within the drain, so endpoints drop the pod while it still serves.
    probe = pod["containers"][0]["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] <= drain
    assert pod["terminationGracePeriodSeconds"] > drain + shutdown
    assert "lifecycle" not in pod["containers"][0]  # no preStop pause: the drain does its work


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_carries_clips_and_long_lived_streams(overlay: str) -> None:
    ingress = by_kind(render(overlay))["Ingress"]
    annotations = ingress["metadata"]["annotations"]
    body_mib = int(annotations["nginx.ingress.kubernetes.io/proxy-body-size"].removesuffix("m"))
    assert body_mib * 2**20 > Settings().video_max_bytes
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= Settings().stream_idle_timeout_s
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == by_kind(render(overlay))["Service"]["metadata"]["name"]


def ray_pod_templates(job: dict) -> list[dict]:
    cluster = job["spec"]["rayClusterSpec"]
    return [cluster["headGroupSpec"]["template"], *(group["template"] for group in cluster["workerGroupSpecs"])]


def test_the_batch_rayjob_validates() -> None:
    """The RayJob against the KubeRay fields it uses, and each pod template against Kubernetes' own schema."""
    (job,) = render("batch", folder="k8s")
    schema = json.loads((PROJECT_ROOT / "tests/deploy/schemas/rayjob-v1.json").read_text())
    jsonschema.validate(job, schema)
    for template in ray_pod_templates(job):
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
        kubernetes_validate.validate(pod_template, "1.32.0", strict=True)


def test_the_batch_rayjob_runs_the_job_in_the_batch_image_with_storage_credentials() -> None:
    (job,) = render("batch", folder="k8s")
    command = job["spec"]["entrypoint"].split()
    assert command[0] == "emotion-batch"
    options = parse(command[1:])
    assert options.input.startswith("s3://") and options.output.startswith("s3://")
    for template in ray_pod_templates(job):
        (container,) = template["spec"]["containers"]
        assert container["image"].endswith("-batch")
        secrets = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
        assert secrets == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["resources"]["limits"]["memory"]
    # Workers hold the CPUs; the head schedules none, so the defaults size the actor pool from the workers.
    assert job["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_the_job_workers_validate() -> None:
    """The worker Deployment against Kubernetes' schema; KEDA's objects against the KEDA fields they use."""
    docs = render("jobs", folder="k8s")
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "ScaledObject", "TriggerAuthentication"]
    schema = json.loads((PROJECT_ROOT / "tests/deploy/schemas/keda-v1alpha1.json").read_text())
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, schema)
        else:
            kubernetes_validate.validate(doc, "1.32.0", strict=True)


def test_the_workers_run_the_worker_command_and_scale_on_the_job_table() -> None:
    objects = by_kind(render("jobs", folder="k8s"))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "service", "worker"]
    settings = {f"EMOTION_{name.upper()}" for name in Settings.model_fields}
    assert set(objects["ConfigMap"]["data"]) <= settings
    assert {e["name"] for e in container["env"] if e["name"].startswith("EMOTION_")} <= settings
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    scaled = objects["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    (trigger,) = scaled["triggers"]
    assert trigger["authenticationRef"]["name"] == objects["TriggerAuthentication"]["metadata"]["name"]
    # The trigger's query runs on the schema the service migrates, and counts the work waiting.
    with postgres_server() as url:
        engine = open_database(url)
        with engine.begin() as connection:
            assert connection.execute(text(trigger["metadata"]["query"])).scalar() == 0
        engine.dispose()
