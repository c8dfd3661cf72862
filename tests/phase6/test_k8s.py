"""The Kubernetes manifests (phase6_docker/k8s), checked offline: rendered, validated, reviewed.

Both overlays are rendered with ``kubectl kustomize`` (Kustomize is built into kubectl) from a
copy of the folder, with the env files their secret generators read made here from a fresh
Compose ``.env``, as ``make k8s-env`` makes them. Every object is validated: Kubernetes' kinds
with kubernetes-validate (strict, Kubernetes ``K8S_VERSION``), KEDA's and the Prometheus
Operator's against the schemas vendored in ``k8s/schemas``. Then what a reviewer would check
(:mod:`phase6_docker.k8s.checks`), on the real render and on one with a mistake planted.

No cluster is needed; kubectl is (skipped without it on a learner's machine, failed in CI).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis

from phase6_docker.envfile import write_deployment_files
from phase6_docker.k8s import checks, envfile
from phase6_docker.k8s.checks import Manifest, find
from phase6_docker.k8s.vendor_schemas import MODELS, schema_file
from phase6_docker.scaling.jobs import make_queues
from phase6_docker.scaling.settings import ScalingSettings
from phase6_docker.security import ACCEPTING_PATH, PUBLIC_PATHS
from tests.tools import require_binary, require_module

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "phase6_docker" / "k8s"
#: The Kubernetes version the objects are validated against: the kubectl these machines carry.
K8S_VERSION = "1.32.0"
KUBECTL_INSTALL = "install kubectl (Kustomize is built in): https://kubernetes.io/docs/tasks/tools/"
#: The production overlay's stores, as an operator would give them (make k8s-env K8S_DATABASE_URL=… K8S_REDIS_URL=…).
PRODUCTION_DATABASE_URL = "postgresql+psycopg://tasklab:db-secret-0123@db.internal.example.com:5432/tasklab"
PRODUCTION_REDIS_URL = "rediss://:redis-secret-0123@cache.internal.example.com:6380/0"
API_LABELS = {"app.kubernetes.io/name": "tasklab", "app.kubernetes.io/component": "api"}


class Render:
    """Both overlays rendered from a copy of k8s/, and the secret values their env files hold."""

    def __init__(self, folder: Path, objects: dict[str, list[Manifest]], secrets: dict[str, dict[str, str]]) -> None:
        self.folder = folder
        self.objects = objects
        self.secrets = secrets


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Render:
    kubectl = require_binary("kubectl", KUBECTL_INSTALL)
    root = tmp_path_factory.mktemp("k8s")
    folder = root / "k8s"
    shutil.copytree(K8S, folder, ignore=shutil.ignore_patterns(envfile.SECRETS_ENV, "__pycache__"))
    # What `make compose-env` writes for Compose, then what `make k8s-env` derives from it.
    write_deployment_files(root / ".env", root / "secrets", ["admin"])
    compose = envfile.read_env(root / ".env")
    prometheus_key = (root / "secrets" / "prometheus_api_key").read_text()
    secrets = {
        "dev": envfile.overlay_values("dev", compose, prometheus_key),
        "production": envfile.overlay_values(
            "production", compose, prometheus_key, database_url=PRODUCTION_DATABASE_URL, redis_url=PRODUCTION_REDIS_URL
        ),
    }
    objects: dict[str, list[Manifest]] = {}
    for overlay, values in secrets.items():
        envfile.write_secrets_env(folder, overlay, values)
        result = subprocess.run(
            [kubectl, "kustomize", str(folder / "overlays" / overlay)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        objects[overlay] = [document for document in yaml.safe_load_all(result.stdout) if document]
    return Render(folder, objects, secrets)


def crd_validators() -> dict[tuple[str, str], Any]:
    """A JSON Schema validator for each vendored CRD schema (jsonschema comes with kubernetes-validate)."""
    jsonschema = require_module("jsonschema", "dev")
    validators: dict[tuple[str, str], Any] = {}
    for api_version, kind in MODELS:
        schema = json.loads(schema_file(api_version, kind).read_text())
        validators[api_version, kind] = jsonschema.Draft202012Validator(schema)
    return validators


def validation_errors(objects: list[Manifest]) -> list[str]:
    """Every object against its schema: the vendored CRD schemas, else kubernetes-validate's (strict)."""
    kubernetes_validate = require_module("kubernetes_validate", "dev")
    crds = crd_validators()
    errors: list[str] = []
    for manifest in objects:
        key = (manifest["apiVersion"], manifest["kind"])
        try:
            if key in crds:
                crds[key].validate(manifest)
            else:
                kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
        except Exception as exc:  # noqa: BLE001 - a schema error, or a kind without a schema: both are failures
            errors.append(f"{checks.named(manifest)}: {type(exc).__name__}: {getattr(exc, 'message', exc)}")
    return errors


def queue_keys() -> list[str]:
    """RQ's Redis key for each of the five queues (``Queue.key``: "rq:queue:" + name). No connection is made."""
    return [queue.key for queue in make_queues(Redis())]


def pool_default_grace() -> float:
    """The pool's own default, if neither --grace-seconds nor POOL_GRACE_SECONDS were set."""
    return float(ScalingSettings.model_fields["pool_grace_seconds"].default)


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_each_overlay_renders_what_it_promises(render: Render, overlay: str) -> None:
    kinds = sorted(f"{manifest['kind']}/{manifest['metadata']['name']}" for manifest in render.objects[overlay])
    common = {
        "ConfigMap",
        "Deployment/tasklab-api",
        "Deployment/tasklab-worker",
        "HorizontalPodAutoscaler/tasklab-api",
        "Job/tasklab-schema",
        "PodDisruptionBudget/tasklab-api",
        "PodDisruptionBudget/tasklab-worker",
        "ScaledObject/tasklab-worker",
        "Secret/tasklab-secrets",
        "Service/tasklab-api",
        "TriggerAuthentication/tasklab-redis",
    }
    present = {name.split("/")[0] if name.startswith("ConfigMap/") else name for name in kinds}
    assert common <= present, kinds
    stores = {"StatefulSet/postgres", "StatefulSet/redis", "Service/postgres", "Service/redis"}
    if overlay == "dev":
        assert stores <= present
        assert not any(name.startswith("Ingress/") for name in kinds)
    else:
        assert not stores & present  # external, by URL
        ingress = find(render.objects[overlay], "Ingress", "tasklab-api")
        assert ingress["spec"]["tls"][0]["secretName"] == "tasklab-tls"
    assert find(render.objects[overlay], "Deployment", "tasklab-api")["spec"]["replicas"] >= 2
    # Every object lands in the overlay's namespace, created by the overlay itself.
    namespace = {"dev": "tasklab-dev", "production": "tasklab"}[overlay]
    assert find(render.objects[overlay], "Namespace", namespace)
    assert {m["metadata"].get("namespace") for m in render.objects[overlay] if m["kind"] != "Namespace"} == {namespace}


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_every_object_validates(render: Render, overlay: str) -> None:
    assert validation_errors(render.objects[overlay]) == []


def test_a_misspelt_field_fails_validation(render: Render) -> None:
    """Strict on both sides: an unknown field in a Kubernetes kind or in KEDA's is an error, not dropped."""
    objects = copy.deepcopy(render.objects["dev"])
    find(objects, "ScaledObject", "tasklab-worker")["spec"]["minReplicaCounts"] = 1
    find(objects, "Deployment", "tasklab-worker")["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    errors = validation_errors(objects)
    assert len(errors) == 2, errors
    assert "minReplicaCounts" in " ".join(errors) and "terminationGracePeriod" in " ".join(errors)


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_what_a_reviewer_checks_holds(render: Render, overlay: str) -> None:
    objects = render.objects[overlay]
    uid, gid = checks.dockerfile_user((REPO / "phase6_docker" / "Dockerfile").read_text())
    assert checks.grace_problems(objects, pool_default_grace()) == []
    assert checks.startup_problems(objects) == []
    assert checks.probe_problems(objects) == []
    assert checks.resource_problems(objects) == []
    assert checks.security_problems(objects, uid, gid) == []
    assert checks.trigger_problems(objects, queue_keys()) == []
    assert checks.secret_reference_problems(objects) == []
    assert checks.exposure_problems(objects, API_LABELS) == []


def test_the_image_user_is_the_dockerfiles() -> None:
    assert checks.dockerfile_user((REPO / "phase6_docker" / "Dockerfile").read_text()) == (10001, 10001)


def test_the_worker_grace_outlasts_the_pool_drain(render: Render) -> None:
    worker = find(render.objects["dev"], "Deployment", "tasklab-worker")
    container = checks.containers(worker)[0]
    drain = checks.stop_seconds(container, render.objects["dev"], pool_default_grace())
    assert drain == 20  # POOL_GRACE_SECONDS in base/config.env, through $(POOL_GRACE_SECONDS)
    assert checks.pod_spec(worker)["terminationGracePeriodSeconds"] > drain


def test_a_grace_shorter_than_the_drain_is_caught(render: Render) -> None:
    """Plant the mistake in a rendered copy: the check names the Deployment and both durations."""
    objects = copy.deepcopy(render.objects["dev"])
    checks.pod_spec(find(objects, "Deployment", "tasklab-worker"))["terminationGracePeriodSeconds"] = 15
    problems = checks.grace_problems(objects, pool_default_grace())
    assert problems == [
        "Deployment tasklab-worker: terminationGracePeriodSeconds 15 s is not longer than "
        "container worker's stop (20 s: preStop pause and drain grace)"
    ]


def test_a_drain_raised_alone_in_the_configmap_is_caught(render: Render) -> None:
    """The drain is read where Kubernetes reads it: POOL_GRACE_SECONDS raised, the grace forgotten."""
    objects = copy.deepcopy(render.objects["dev"])
    config = next(manifest for manifest in objects if manifest["kind"] == "ConfigMap")
    config["data"]["POOL_GRACE_SECONDS"] = "45"
    assert checks.grace_problems(objects, pool_default_grace()) == [
        "Deployment tasklab-worker: terminationGracePeriodSeconds 30 s is not longer than "
        "container worker's stop (45 s: preStop pause and drain grace)"
    ]


def test_the_triggers_watch_rqs_keys_for_the_five_queues(render: Render) -> None:
    triggers = find(render.objects["dev"], "ScaledObject", "tasklab-worker")["spec"]["triggers"]
    assert [trigger["metadata"]["listName"] for trigger in triggers] == queue_keys()
    assert queue_keys() == [f"rq:queue:phase5:p{priority}" for priority in (5, 4, 3, 2, 1)]
    wrong = copy.deepcopy(render.objects["dev"])
    find(wrong, "ScaledObject", "tasklab-worker")["spec"]["triggers"][0]["metadata"]["listName"] = "phase5:p5"
    assert len(checks.trigger_problems(wrong, queue_keys())) == 1


def test_the_probes_need_no_key(render: Render) -> None:
    """The kubelet sends no API key: the probe paths are the public ones, readiness the one that ignores Redis."""
    api = checks.containers(find(render.objects["dev"], "Deployment", "tasklab-api"))[0]
    assert api["readinessProbe"]["httpGet"]["path"] == ACCEPTING_PATH
    assert {api[probe]["httpGet"]["path"] for probe in ("livenessProbe", "startupProbe")} == {"/health"}
    assert {ACCEPTING_PATH, "/health"} <= PUBLIC_PATHS


def test_the_dev_urls_name_the_overlays_services(render: Render) -> None:
    values = render.secrets["dev"]
    services = {manifest["metadata"]["name"] for manifest in render.objects["dev"] if manifest["kind"] == "Service"}
    assert {envfile.DEV_POSTGRES_HOST, envfile.DEV_REDIS_HOST} <= services
    assert values["DATABASE_URL"].endswith(f"@{envfile.DEV_POSTGRES_HOST}:5432/{values['POSTGRES_DB']}")
    assert values["REDIS_ADDRESS"] == f"{envfile.DEV_REDIS_HOST}:6379" and values["REDIS_TLS"] == "disable"


def test_production_takes_keda_s_address_from_the_redis_url(render: Render) -> None:
    values = render.secrets["production"]
    assert values["REDIS_ADDRESS"] == "cache.internal.example.com:6380"
    assert (values["REDIS_PASSWORD"], values["REDIS_TLS"]) == ("redis-secret-0123", "enable")
    assert "POSTGRES_PASSWORD" not in values  # no in-cluster database to give it to
    with pytest.raises(envfile.EnvFileError, match="database 3"):
        envfile.redis_for_keda("redis://:pw@cache:6379/3")
    with pytest.raises(envfile.EnvFileError, match="K8S_DATABASE_URL"):
        envfile.overlay_values("production", {"API_KEY_HASHES": "x"}, "key")


def committable(folder: str) -> list[Path]:
    """The files of ``folder`` git has or would take (tracked, or new and not ignored)."""
    git = require_binary("git", "install git")
    command = [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", folder]
    listed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in listed.stdout.split("\0") if name and (REPO / name).exists()]


def test_no_secret_value_is_in_git(render: Render) -> None:
    git = require_binary("git", "install git")
    for overlay in ("dev", "production"):
        env_file = f"phase6_docker/k8s/overlays/{overlay}/{envfile.SECRETS_ENV}"
        ignored = subprocess.run([git, "check-ignore", "-q", env_file], cwd=REPO)
        assert ignored.returncode == 0, f"{env_file} is not ignored by git"
    committed = committable("phase6_docker/k8s")
    assert committed and not any(path.name == envfile.SECRETS_ENV for path in committed)
    secret_values = {value for values in render.secrets.values() for value in values.values() if len(value) >= 16}
    for path in committed:
        if path.suffix in {".yaml", ".env"}:
            text = path.read_text()
            assert not [value for value in secret_values if value in text], path
            documents: list[Any] = [d for d in yaml.safe_load_all(text) if d] if path.suffix == ".yaml" else []
            assert not [d for d in documents if d.get("kind") == "Secret"], f"{path}: a Secret object in git"
            for generator in (d for d in documents if d.get("kind") == "Kustomization"):
                for secret in generator.get("secretGenerator", []):
                    assert set(secret) <= {"name", "envs", "options"}, f"{path}: a secret generator with literals or files"
                    assert secret["envs"] == [envfile.SECRETS_ENV]
