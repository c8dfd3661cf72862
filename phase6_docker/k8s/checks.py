"""What a reviewer checks in the rendered manifests, as functions of the objects ``kubectl kustomize`` prints.

Each check returns the problems it finds, one sentence each (an empty list: nothing wrong), so a
test can run it on the real render of an overlay and on a copy with a mistake planted in it.
Values are read the way Kubernetes will set them: ``$(NAME)`` in a command is filled in from the
container's environment, which may come from a ConfigMap of the same render.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

Manifest = dict[str, Any]

#: Kinds with a pod template, and those whose pods run until stopped (they need probes).
WORKLOADS = frozenset({"Deployment", "StatefulSet", "Job"})
LONG_RUNNING = frozenset({"Deployment", "StatefulSet"})
#: Kubernetes' default when a pod does not set terminationGracePeriodSeconds.
DEFAULT_TERMINATION_GRACE_SECONDS = 30
#: The image every tasklab container runs (base/*.yaml; the overlays may prefix a registry).
IMAGE = "tasklab-phase6"
VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
DOCKERFILE_USER = re.compile(r"^USER\s+(\d+)(?::(\d+))?\s*$", re.MULTILINE)


def dockerfile_user(dockerfile: str) -> tuple[int, int]:
    """The numeric ``USER uid:gid`` of the Dockerfile's last stage (the one that runs)."""
    found = DOCKERFILE_USER.findall(dockerfile)
    if not found:
        raise ValueError("the Dockerfile has no numeric USER line")
    uid, gid = found[-1]
    return int(uid), int(gid or uid)


def named(manifest: Manifest) -> str:
    return f"{manifest['kind']} {manifest['metadata']['name']}"


def find(objects: Iterable[Manifest], kind: str, name: str) -> Manifest:
    for manifest in objects:
        if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
            return manifest
    raise KeyError(f"no {kind} {name} in the render")


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def containers(manifest: Manifest, *, init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(manifest)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def workloads(objects: Iterable[Manifest], kinds: frozenset[str] = WORKLOADS) -> Iterator[Manifest]:
    return (manifest for manifest in objects if manifest["kind"] in kinds)


def is_tasklab(container: dict[str, Any]) -> bool:
    return str(container["image"]).rsplit("/", 1)[-1].split(":")[0].split("@")[0] == IMAGE


def environment(container: dict[str, Any], objects: list[Manifest]) -> dict[str, str]:
    """The container's variables: literals and ConfigMap values as set; a Secret's as ``<secret NAME/KEY>``."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= find(objects, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
    for variable in container.get("env", []):
        source = variable.get("valueFrom", {})
        if "value" in variable:
            env[variable["name"]] = expand(str(variable["value"]), env)
        elif ref := source.get("configMapKeyRef"):
            env[variable["name"]] = find(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
        elif ref := source.get("secretKeyRef"):
            env[variable["name"]] = f"<secret {ref['name']}/{ref['key']}>"
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """``$(NAME)`` replaced from ``env``, as the kubelet does; an unknown name is an error here."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in env:
            raise KeyError(f"$({match.group(1)}) is not set in the container's environment")
        return env[match.group(1)]

    return VARIABLE.sub(value, text)


def command_line(container: dict[str, Any], objects: list[Manifest]) -> list[str]:
    env = environment(container, objects)
    return [expand(str(part), env) for part in [*container.get("command", []), *container.get("args", [])]]


def option(arguments: list[str], flag: str) -> str | None:
    """The value of ``--flag value`` or ``--flag=value``, or ``None``."""
    for index, argument in enumerate(arguments):
        if argument == flag and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(flag + "="):
            return argument.split("=", 1)[1]
    return None


def stop_seconds(container: dict[str, Any], objects: list[Manifest], pool_default_grace: float) -> float | None:
    """How long the container may take after the kubelet's SIGTERM (preStop pause included); ``None``: not ours to check.

    A worker drains for ``--grace-seconds``, else ``POOL_GRACE_SECONDS``, else the pool's default;
    uvicorn waits ``--timeout-graceful-shutdown`` for requests in flight (without it: for ever).
    """
    arguments = command_line(container, objects)
    pause = float(container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0))
    if "phase6_docker.worker" in arguments:
        grace = option(arguments, "--grace-seconds") or environment(container, objects).get("POOL_GRACE_SECONDS")
        return pause + (float(grace) if grace is not None else pool_default_grace)
    if arguments[:1] == ["uvicorn"]:
        timeout = option(arguments, "--timeout-graceful-shutdown")
        return pause + float(timeout) if timeout is not None else float("inf")
    return None


def grace_problems(objects: list[Manifest], pool_default_grace: float) -> list[str]:
    """terminationGracePeriodSeconds must be longer than what a container does on SIGTERM.

    Shorter, and the kubelet's SIGKILL cuts the pool's drain short: running tasks die mid-way
    and the pool never marks them for retry (the reconciler finds them later, as after a crash).
    """
    problems: list[str] = []
    for manifest in workloads(objects, LONG_RUNNING):
        grace = float(pod_spec(manifest).get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS))
        for container in containers(manifest, init=False):
            needed = stop_seconds(container, objects, pool_default_grace)
            if needed is not None and not grace > needed:
                problems.append(
                    f"{named(manifest)}: terminationGracePeriodSeconds {grace:g} s is not longer than "
                    f"container {container['name']}'s stop ({needed:g} s: preStop pause and drain grace)"
                )
    return problems


def startup_problems(objects: list[Manifest]) -> list[str]:
    """A tasklab container waits up to STARTUP_TIMEOUT_SECONDS for its stores: its startup probe must wait longer."""
    problems: list[str] = []
    for manifest in workloads(objects, LONG_RUNNING):
        for container in filter(is_tasklab, containers(manifest, init=False)):
            timeout = environment(container, objects).get("STARTUP_TIMEOUT_SECONDS")
            probe = container.get("startupProbe")
            if timeout is None or probe is None:
                problems.append(f"{named(manifest)}/{container['name']}: no STARTUP_TIMEOUT_SECONDS or no startupProbe")
                continue
            budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
            if not budget > float(timeout):
                where = f"{named(manifest)}/{container['name']}"
                problems.append(f"{where}: the startup probe gives up after {budget} s, before the {timeout} s wait")
    return problems


def probe_problems(objects: list[Manifest]) -> list[str]:
    """Every container that runs until stopped has a liveness and a readiness probe."""
    return [
        f"{named(manifest)}/{container['name']}: no {probe}"
        for manifest in workloads(objects, LONG_RUNNING)
        for container in containers(manifest)
        for probe in ("livenessProbe", "readinessProbe")
        if probe not in container
    ]


def resource_problems(objects: list[Manifest]) -> list[str]:
    """Every container of every workload requests and is limited in CPU and memory."""
    return [
        f"{named(manifest)}/{container['name']}: no {kind} {resource}"
        for manifest in workloads(objects)
        for container in containers(manifest)
        for kind in ("requests", "limits")
        for resource in ("cpu", "memory")
        if resource not in container.get("resources", {}).get(kind, {})
    ]


def security_problems(objects: list[Manifest], uid: int, gid: int) -> list[str]:
    """Non-root, read-only root filesystem, no capability, no escalation; tasklab's pods as the image's user.

    A tasklab pod also needs its memory-backed /tmp: the metrics files are written there.
    """
    problems: list[str] = []
    for manifest in workloads(objects):
        spec = pod_spec(manifest)
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True:
            problems.append(f"{named(manifest)}: runAsNonRoot is not true")
        ours = [container for container in containers(manifest) if is_tasklab(container)]
        user = (pod.get("runAsUser"), pod.get("runAsGroup"))
        if ours and user != (uid, gid):
            problems.append(f"{named(manifest)}: runs as {user[0]}:{user[1]}, the image as {uid}:{gid}")
        for container in containers(manifest):
            context = container.get("securityContext", {})
            where = f"{named(manifest)}/{container['name']}"
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation is allowed")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities are not all dropped")
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in ours:
            mounted = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
            volume = volumes.get(mounted.get("/tmp", ""), {})
            if volume.get("emptyDir", {}).get("medium") != "Memory":
                where = f"{named(manifest)}/{container['name']}"
                problems.append(f"{where}: /tmp (the metrics files) is not a memory-backed emptyDir")
    return problems


def trigger_problems(objects: list[Manifest], queue_keys: Iterable[str]) -> list[str]:
    """The ScaledObject drives the worker Deployment on exactly RQ's five queue lists, never down to zero."""
    problems: list[str] = []
    scaled = [manifest for manifest in objects if manifest["kind"] == "ScaledObject"]
    if len(scaled) != 1:
        return [f"{len(scaled)} ScaledObjects, expected 1"]
    spec = scaled[0]["spec"]
    target = spec["scaleTargetRef"]
    if target.get("kind", "Deployment") != "Deployment" or target["name"] not in {
        manifest["metadata"]["name"] for manifest in objects if manifest["kind"] == "Deployment"
    }:
        problems.append(f"the ScaledObject targets {target}, not a Deployment of the render")
    lists = [trigger["metadata"].get("listName") for trigger in spec["triggers"] if trigger["type"] == "redis"]
    if sorted(lists) != sorted(queue_keys) or len(lists) != len(spec["triggers"]):
        problems.append(f"the triggers watch {lists}, not RQ's queue keys {sorted(queue_keys)}")
    if spec.get("minReplicaCount", 0) < 1:
        problems.append("minReplicaCount is below 1: retries (RQ's scheduled registry) and the reconciler would be stranded")
    if "maxReplicaCount" not in spec:
        problems.append("no maxReplicaCount")
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
    if "stabilizationWindowSeconds" not in behavior.get("scaleDown", {}):
        problems.append("no scale-down stabilization window: the cool-down in force above minReplicaCount")
    return problems


def secret_reference_problems(objects: list[Manifest]) -> list[str]:
    """Secrets named where Kustomize cannot rewrite a name (KEDA's, the operator's kinds) exist under that exact name."""
    secrets = {manifest["metadata"]["name"]: manifest for manifest in objects if manifest["kind"] == "Secret"}
    wanted: list[tuple[str, str, str]] = []
    for manifest in objects:
        if manifest["kind"] == "TriggerAuthentication":
            wanted += [(named(manifest), ref["name"], ref["key"]) for ref in manifest["spec"].get("secretTargetRef", [])]
        if manifest["kind"] == "ServiceMonitor":
            for endpoint in manifest["spec"]["endpoints"]:
                if credentials := endpoint.get("authorization", {}).get("credentials"):
                    wanted.append((named(manifest), credentials["name"], credentials["key"]))
    return [
        f"{where}: reads key {key} of Secret {name}, which the render does not have"
        for where, name, key in wanted
        if key not in secrets.get(name, {}).get("data", {})
    ]


def exposure_problems(objects: list[Manifest], api_labels: dict[str, str]) -> list[str]:
    """Ingress is denied by default, and only the API's pods accept connections from anywhere."""
    policies = [manifest for manifest in objects if manifest["kind"] == "NetworkPolicy"]
    problems: list[str] = []
    if not any(
        policy["spec"]["podSelector"] == {} and "Ingress" in policy["spec"]["policyTypes"] and not policy["spec"].get("ingress")
        for policy in policies
    ):
        problems.append("no default-deny NetworkPolicy for ingress")
    for policy in policies:
        open_rules = [rule for rule in policy["spec"].get("ingress", []) if not rule.get("from")]
        if open_rules and policy["spec"]["podSelector"].get("matchLabels") != api_labels:
            problems.append(f"{named(policy)}: open to every source, but selects {policy['spec']['podSelector']}, not the API")
    for ingress in (manifest for manifest in objects if manifest["kind"] == "Ingress"):
        backends = {path["backend"]["service"]["name"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
        services = {manifest["metadata"]["name"]: manifest for manifest in objects if manifest["kind"] == "Service"}
        if any(services.get(name, {}).get("spec", {}).get("selector") != api_labels for name in backends):
            problems.append(f"{named(ingress)}: routes to {sorted(backends)}, not only the API's Service")
    return problems
