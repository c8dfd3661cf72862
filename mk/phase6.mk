# Phase 6: the Compose stack, built and run for real (included by the Makefile).
#
#   make compose-test    build the image from phase6_docker/Dockerfile on a private Docker engine,
#                        run compose.yaml (infrastructure images swapped by compose.ci.yaml) and
#                        the must-show scenario: non-root image, healthy stack, verify, a killed
#                        worker and a restarted Redis, draining, down/up, a worker cut off the
#                        network and reconnected. Needs root; installs
#                        docker.io, docker-compose and debootstrap when missing; cleans up after.
#   make compose-up      the same stack for a user, with official images: docker compose up
#                        (WORKERS=N pools, default 3)
#   make compose-down    stop and remove its containers; the volumes (tasks, queue) stay
#   make compose-env     phase6_docker/.env and secrets/ with fresh passwords and an admin key
#
# COMPOSE=docker-compose for Compose v1. COMPOSE_FILE (a colon-separated list, read by both
# Compose versions) adds files after compose.yaml: make compose-test adds compose.ci.yaml.

COMPOSE ?= docker compose
export COMPOSE_FILE ?= phase6_docker/compose.yaml

.PHONY: compose-test compose-up compose-down compose-env

compose-test: $(STAMP)
	PY=$(PY) bash phase6_docker/ci/compose-test.sh

compose-env: $(STAMP)
	$(PY) -m phase6_docker.envfile

compose-up:
	$(COMPOSE) up -d --build --scale worker=$(if $(filter command line,$(origin WORKERS)),$(WORKERS),3)

compose-down:
	$(COMPOSE) down
