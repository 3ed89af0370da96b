#!/usr/bin/env bash
# The whole test suite against real services.
#
# Installs what is missing (docker.io, busybox-static, postgresql, prometheus
# for promtool, iptables, file; needs root and Debian's apt), starts a
# throwaway dockerd when none answers and a throwaway PostgreSQL cluster
# (tests/services.sh), runs `cargo test` and packaging/check.sh, and stops what
# it started. packaging/check.sh installs what the packaging needs (lintian,
# musl-tools, the aarch64 cross gcc, qemu-user-static, the musl targets,
# cargo-deb: see there), builds and checks amd64 and arm64, and installs and
# purges the amd64 .deb. Extra arguments go to `cargo test` (and skip the
# packaging checks).
#
#   RTINSPECT_TEST_DOCKER_HOST   use this dockerd (unix:///path) instead
#   RTINSPECT_TEST_REQUIRE_LIVE  fail, not skip, when a service is missing
set -euo pipefail

cd "$(dirname "$0")/.."
log_tag=tests/run.sh
# shellcheck source=tests/services.sh
. tests/services.sh
install_missing
start_dockerd
start_postgres
start_podman

log "dockerd: ${RTINSPECT_TEST_DOCKER_HOST:-none}; PostgreSQL: ${RTINSPECT_TEST_DATABASE_URL:-none}"
cargo test "$@"

# What ships: the static binary, the .deb (installed, upgraded, purged on this
# machine) and the image. Needs root and a machine without rtinspect installed.
if [ $# -gt 0 ]; then
  log "packaging checks skipped: cargo test was given a filter"
elif [ "$(id -u)" = 0 ] && ! dpkg -s rtinspect >/dev/null 2>&1; then
  packaging/check.sh
elif [ -n "${RTINSPECT_TEST_REQUIRE_LIVE:-}" ]; then
  log "packaging checks need root and a machine where rtinspect is not installed"
  exit 1
else
  log "skipped: packaging checks (need root and a machine where rtinspect is not installed)"
fi
