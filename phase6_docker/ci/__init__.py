"""``make compose-test``: phase 6's stack built and run for real on a private Docker engine (CI only, not in the image)."""
