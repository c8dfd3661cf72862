#!/usr/bin/env bash
# make compose-test: build phase 6's image from the real Dockerfile, run the Compose stack on a
# Docker engine of our own, and play the must-show scenario against it (ci/scenario.py).
#
# No image registry is reachable here, so:
#   * base images are built from Debian's packages (debootstrap, then `docker import`) and cached
#     in $TASKLAB_DOCKER_CACHE (default /var/tmp/tasklab-docker-cache) for the next run;
#   * the app image installs the project from a wheelhouse built on the host (phase6_docker/wheels/);
#   * compose.ci.yaml swaps only the infrastructure images (postgres, redis, prometheus) for those
#     local stand-ins; compose.yaml is what a user runs.
# Everything it starts (dockerd, containers, images, volumes) is stopped and removed at exit.
# It needs root (dockerd, debootstrap). It fails with the reason when the engine cannot start.
# TASKLAB_COMPOSE_SCENARIO=0 skips the fault scenario and runs only chapter 6's commands.
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
CACHE="${TASKLAB_DOCKER_CACHE:-/var/tmp/tasklab-docker-cache}"
WORK="$(mktemp -d /var/tmp/tasklab-compose-test.XXXXXX)"
SUITE="bookworm"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Bump to rebuild the cached base filesystems when what goes into them changes.
BASE_VERSION=3
PYTHON_PACKAGES="python3,python3-venv"
INFRA_PACKAGES="postgresql-15,redis-server,redis-tools,wget"
# Prometheus is one static binary; its package's dependencies are its web UI's JavaScript (200 MB),
# which CI never loads: the package is unpacked into the tree without them.
INFRA_UNPACKED="prometheus"
# Debian bookworm's Python is 3.11.2. redis needs async-timeout below 3.11.3, a marker that the
# host's newer Python skips when it resolves the wheelhouse: add it by hand.
EXTRA_WHEELS="async-timeout>=4.0.3"
export DOCKER_HOST="unix://$WORK/docker.sock"
STARTED=$(date +%s)

log() { printf '[compose-test %4ss] %s\n' "$(( $(date +%s) - STARTED ))" "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -S "$WORK/docker.sock" ]; then
    log "cleaning up: containers, volumes, images"
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker volume ls -q | xargs -r docker volume rm -f >/dev/null 2>&1 || true
  fi
  if [ -f "$WORK/dockerd.pid" ]; then
    kill "$(cat "$WORK/dockerd.pid")" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -e "$WORK/dockerd.pid" ] || break; sleep 0.2; done
  fi
  # vfs keeps a full copy of every layer and container: the data root is gigabytes.
  umount -R "$WORK/data" 2>/dev/null || true
  rm -rf "$WORK" "$REPO"/phase6_docker/wheels/*.whl
  exit "$status"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || fail "needs root: it starts its own dockerd and runs debootstrap"

# -- 1. the tools, from Debian's packages --------------------------------------------------------
missing=""
for tool in dockerd docker-compose debootstrap; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  log "installing docker.io docker-compose debootstrap (missing:$missing)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
fi

# -- 2. our own engine: own socket, data root and pid file, so it disturbs no other dockerd ------
log "starting dockerd (vfs, no iptables) in $WORK"
dockerd --storage-driver=vfs --iptables=false --ip-masq=false \
  --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
  --host "$DOCKER_HOST" --bridge=none --default-address-pool base=10.213.0.0/16,size=24 \
  >"$WORK/dockerd.log" 2>&1 &
for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
docker info >/dev/null 2>&1 || fail "the Docker engine did not start within 30 s: $(tail -n 5 "$WORK/dockerd.log")"
log "engine up: $(docker version --format 'server {{.Server.Version}}')"

# -- 3. base images from Debian packages (cached tarballs) ----------------------------------------
# Prepare a debootstrapped tree for one role, then drop what no container needs.
prepare_rootfs() {
  local role=$1 dir=$2
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/doc "$dir"/usr/share/man "$dir"/usr/share/info "$dir"/usr/share/locale
  if [ "$role" = infra ]; then
    # Unpacked aside, then only its binaries copied in: the package's ./lib/ would replace the
    # tree's /lib -> usr/lib symlink (a merged /usr) with a directory, and break every program.
    mkdir -p "$WORK/unpacked"
    (cd "$WORK/unpacked" \
      && { apt-get download -q -o APT::Sandbox::User=root $INFRA_UNPACKED >/dev/null 2>&1 \
           || { apt-get update -qq && apt-get download -q -o APT::Sandbox::User=root $INFRA_UNPACKED >/dev/null; }; } \
      && for deb in ./*.deb; do dpkg -x "$deb" .; done)
    cp "$WORK/unpacked/usr/bin/prometheus" "$WORK/unpacked/usr/bin/promtool" "$dir/usr/bin/"
    rm -rf "$WORK/unpacked"
    mkdir -p "$dir"/data "$dir"/prometheus "$dir"/var/lib/postgresql/data "$dir"/run/postgresql
    chroot "$dir" chown redis:redis /data
    chroot "$dir" chown nobody:nogroup /prometheus
    chroot "$dir" chown -R postgres:postgres /var/lib/postgresql /run/postgresql
    chmod 700 "$dir"/var/lib/postgresql/data
    install -m 755 "$REPO/phase6_docker/ci/postgres-entrypoint.sh" "$dir"/usr/local/bin/postgres-entrypoint
  fi
}

base_tarball() {
  local role=$1 packages=$2
  local key; key=$(printf '%s %s %s %s %s' "$BASE_VERSION" "$SUITE" "$packages" "$INFRA_UNPACKED" \
    "$(sha256sum "$REPO/phase6_docker/ci/postgres-entrypoint.sh")" | sha256sum | cut -c1-12)
  local tarball="$CACHE/$role-$key.tar"
  if [ ! -s "$tarball" ]; then
    log "debootstrap $role ($packages): a few minutes, once; cached in $CACHE"
    mkdir -p "$CACHE"
    local dir="$WORK/rootfs-$role"
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir" "$MIRROR" >"$WORK/debootstrap-$role.log" 2>&1 \
      || fail "debootstrap $role failed: $(tail -n 5 "$WORK/debootstrap-$role.log")"
    prepare_rootfs "$role" "$dir"
    rm -f "$CACHE/$role"-*.tar  # an older tree of this role: never used again
    tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
  fi
  echo "$tarball"
}

# Both at once: debootstrap mostly waits on downloads.
base_tarball python "$PYTHON_PACKAGES" >"$WORK/python.tarball" & python_job=$!
base_tarball infra "$INFRA_PACKAGES" >"$WORK/infra.tarball" & infra_job=$!
wait "$python_job" || fail "could not build the Python base image"
wait "$infra_job" || fail "could not build the infrastructure base image"
python_tar=$(cat "$WORK/python.tarball")
infra_tar=$(cat "$WORK/infra.tarball")
log "importing base images"
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' "$python_tar" tasklab-ci/python:3.11 >/dev/null
# Three stand-ins from one tarball, each imported with its own user, entry point and environment
# (a Dockerfile would copy the whole tree once per instruction on the vfs driver).
import_infra() {
  local name=$1; shift
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$@" "$infra_tar" "$name" >/dev/null
}
import_infra tasklab-ci/postgres:15 --change 'USER postgres' --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]'
import_infra tasklab-ci/redis:7 --change 'USER redis' --change 'WORKDIR /data' --change 'CMD ["redis-server"]'
import_infra tasklab-ci/prometheus:2 --change 'USER nobody' --change 'WORKDIR /prometheus' --change 'ENTRYPOINT ["/usr/bin/prometheus"]'

# -- 4. the app image: the real Dockerfile, the project from a host-built wheelhouse ------------
log "building the wheelhouse on the host"
"$PY" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$REPO/phase6_docker/wheels" \
  --requirement <("$PY" -c "import tomllib; print('\n'.join(tomllib.load(open('$REPO/pyproject.toml', 'rb'))['project']['dependencies']))") \
  'setuptools>=69' wheel $EXTRA_WHEELS >"$WORK/wheelhouse.log" 2>&1 || fail "pip wheel failed: $(tail -n 5 "$WORK/wheelhouse.log")"
log "building the app image from phase6_docker/Dockerfile (BuildKit, no network: --network=none, PIP_NO_INDEX=1)"
# BuildKit through Debian's own client (20.10 has it built in; a newer docker CLI would want the
# buildx plugin): the legacy builder copies the whole image for every instruction on vfs, 4x slower.
DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain --network=none --build-arg PYTHON_IMAGE=tasklab-ci/python:3.11 --build-arg PIP_NO_INDEX=1 \
  -f "$REPO/phase6_docker/Dockerfile" -t tasklab-phase6:ci "$REPO" >"$WORK/build.log" 2>&1 \
  || fail "docker build failed: $(tail -n 20 "$WORK/build.log")"
log "image tasklab-phase6:ci: $(docker image inspect tasklab-phase6:ci --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"

# -- 5. the scenario ---------------------------------------------------------------------------
if [ "${TASKLAB_COMPOSE_SCENARIO:-1}" = 1 ]; then
  log "running the must-show scenario"
  TASKLAB_IMAGE=tasklab-phase6:ci "$PY" -m phase6_docker.ci.scenario --work-dir "$WORK"
fi

# -- 6. chapter 6's commands, as a reader types them ------------------------------------------
# The blocks marked `<!-- run docker -->` in docs/06-docker.md: make compose-env's secrets,
# make compose-up (a build through Compose this time), verify, make compose-down. Only two things
# differ from a reader's machine: COMPOSE_FILE adds compose.ci.yaml (no registry here), and
# Compose v1 builds through Debian's docker CLI, which has BuildKit built in.
log "running chapter 6's runnable blocks (tasklab_cli.runblocks --docker)"
mkdir -p "$WORK/bin" && ln -sf /usr/bin/docker "$WORK/bin/docker"
PATH="$WORK/bin:$PATH" COMPOSE=docker-compose COMPOSE_FILE=phase6_docker/compose.yaml:phase6_docker/compose.ci.yaml \
  COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1 "$PY" -m tasklab_cli.runblocks --docker "$REPO/docs/06-docker.md"
log "passed in $(( $(date +%s) - STARTED )) s"
