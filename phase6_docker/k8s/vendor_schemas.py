"""How ``schemas/*.json`` were made: JSON Schemas of the CRDs the manifests use, from PyPI packages.

kubernetes-validate knows Kubernetes' own kinds only. KEDA's ScaledObject and
TriggerAuthentication, and the Prometheus Operator's ServiceMonitor and PodMonitor, are checked
against these files instead (tests/phase6/test_k8s.py). They come from the cloudcoil model
packages, whose pydantic models are generated from each project's CRD (its openAPIV3Schema):

    python3 -m venv /tmp/crd-models
    /tmp/crd-models/bin/pip install cloudcoil.models.keda==2.16.1.0 cloudcoil.models.prometheus_operator==0.80.1.0
    /tmp/crd-models/bin/python -m phase6_docker.k8s.vendor_schemas      # from the repository root

Not a dependency of the project: run it again only to move to another KEDA or operator version
(and change ``PACKAGES``). One change is made to pydantic's schemas: an object with declared
properties gets ``additionalProperties: false``, as the API server's strict field validation
(``kubectl apply``'s default) refuses an unknown field; a misspelt ``minReplicaCount`` is then an
error here too, not a field silently dropped.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).parent / "schemas"
#: The packages and versions the files come from (the upstream project's version is the first three numbers).
PACKAGES = {"cloudcoil.models.keda": "2.16.1.0", "cloudcoil.models.prometheus_operator": "0.80.1.0"}
#: apiVersion, kind → the module and class that model it.
MODELS = {
    ("keda.sh/v1alpha1", "ScaledObject"): ("cloudcoil.models.keda.v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): ("cloudcoil.models.keda.v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("cloudcoil.models.prometheus_operator.v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"): ("cloudcoil.models.prometheus_operator.v1", "PodMonitor"),
}


def schema_file(api_version: str, kind: str) -> Path:
    """``schemas/keda.sh-v1alpha1-scaledobject.json`` for ``keda.sh/v1alpha1``, ``ScaledObject``."""
    return SCHEMAS / f"{api_version.replace('/', '-')}-{kind.lower()}.json"


def strict(node: Any) -> Any:
    """``node`` with ``additionalProperties: false`` on every object schema that lists its properties."""
    if isinstance(node, dict):
        node = {key: strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def main() -> None:
    for package, version in PACKAGES.items():
        installed = importlib.metadata.version(package)
        if installed != version:
            raise SystemExit(f"{package} {installed} is installed, PACKAGES names {version}")
    SCHEMAS.mkdir(exist_ok=True)
    for (api_version, kind), (module, name) in MODELS.items():
        model = getattr(importlib.import_module(module), name)
        package = next(package for package in PACKAGES if module.startswith(package))
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": f"{api_version} {kind}, from {package} {PACKAGES[package]} (PyPI) by "
            "phase6_docker/k8s/vendor_schemas.py: its pydantic model's JSON Schema, unknown fields refused.",
            **strict(model.model_json_schema(by_alias=True)),
        }
        path = schema_file(api_version, kind)
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
