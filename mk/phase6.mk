# Phase 6: the Compose stack, built and run for real (included by the Makefile).
#
#   make compose-test    build the image from phase6_docker/Dockerfile on a private Docker engine,
#                        run compose.yaml (infrastructure images swapped by compose.ci.yaml) and
#                        the must-show scenario: non-root image, healthy stack, verify, a killed
#                        worker and a restarted Redis, draining, down/up. Needs root; installs
#                        docker.io, docker-compose and debootstrap when missing; cleans up after.
#   make compose-up      the same stack for a user, with official images: docker compose up
#   make compose-env     phase6_docker/.env and secrets/ with fresh passwords and an admin key

COMPOSE ?= docker compose
COMPOSE_FILE_6 := phase6_docker/compose.yaml

.PHONY: compose-test compose-up compose-env

compose-test: $(STAMP)
	PY=$(PY) bash phase6_docker/ci/compose-test.sh

compose-env: $(STAMP)
	$(PY) -m phase6_docker.envfile

compose-up:
	$(COMPOSE) -f $(COMPOSE_FILE_6) up -d --build --scale worker=$(or $(WORKERS),3)
