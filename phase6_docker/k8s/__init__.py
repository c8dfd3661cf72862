"""Phase 6 on Kubernetes: Kustomize manifests (``base/``, ``overlays/dev``, ``overlays/production``).

The Python here only serves them: :mod:`.envfile` writes the env file an overlay's secret
generator reads, :mod:`.checks` holds what a reviewer checks in the rendered objects (the tests
call it), and :mod:`.vendor_schemas` made the CRD schemas in ``schemas/``.
"""
