#!/usr/bin/env bash
# The events benchmark: how soon a failure is reported with the Docker events
# stream on and off (a real dockerd, `--interval 15s`), what the stream costs
# dockerd at steady state with 100 real containers, and rtinspect's footprint
# at 1,000 records (the fake engine). Public tools only: bash, python3, the
# docker CLI, /proc. Prints a Markdown table, also written to FILE when
# given; leaves nothing running.
#
#   tests/bench/events.sh [FILE]
#
#   BENCH_DOCKER_HOST        measure on this dockerd (e.g. the value of
#                            RTINSPECT_TEST_DOCKER_HOST) instead of a throwaway
#                            one; its CPU then counts every other client's work
#                            too, and it must share this machine's filesystem
#   BENCH_FAILURES           failures per kind and mode (50): `docker kill`,
#                            exits by itself, healthcheck turns unhealthy, and
#                            dies while booting (started after a tick, exits
#                            0.5-3 s later, before the next tick lists it)
#   BENCH_WINDOW             seconds the failures are spread over (60)
#   BENCH_HEALTH_INTERVAL    healthcheck interval of the unhealthy kind, s (10)
#   BENCH_CONTAINERS         real containers for the steady-state cost (100)
#   BENCH_COST_SECONDS       each steady-state window, s (120)
#   BENCH_FOOTPRINT_SECONDS  the footprint run at 1,000 records, s (50)
#   BENCH_MUSL               0: leave out the static musl build's footprint
#                            (measured when rustup has the musl target)
#   BENCH_RTINSPECT_ARGS     more options for every rtinspect run, e.g.
#                            `--report both` (incidents, with their log
#                            tails, made beside the facts measured)
#
# Latency is measured from the failure's Docker event (`timeNano`, recorded by
# `docker events`) to the moment rtinspect's envelope line for that container
# is read from its stdout. Needs root: a throwaway dockerd, and FIFOs
# bind-mounted into containers so that self-timed failures start only after
# rtinspect's first tick. rtinspect runs with RUST_LOG=rtinspect=debug and
# text logs: its tick lines place the ticks (a booting container is started
# between two), and with events on its `detected … read_ms= answered_ms=
# accepted_ms=` lines split the latency into stages ("n/a" without them).
# The floor beside them: on each failure's event the benchmark inspects that
# container once itself over the Unix socket, timing dockerd's answer (one
# more client of dockerd, one request per failure).
#
# A default run takes about 12 minutes once built (11 min 18 s on 2 cores,
# over 6 of them the three cost windows and their 100 containers); a small
# one, e.g.
#   BENCH_FAILURES=5 BENCH_WINDOW=20 BENCH_COST_SECONDS=10 \
#     BENCH_FOOTPRINT_SECONDS=10 tests/bench/events.sh
# about 2.5.
set -euo pipefail

log_tag=tests/bench/events.sh
result_file=${1:-}
if [ -n "$result_file" ]; then
  # Resolved before the cd below: a relative path means the caller's.
  result_file=$(realpath -m -- "$result_file")
  [ -d "$(dirname "$result_file")" ] || { echo "$log_tag: no directory for $result_file" >&2; exit 1; }
fi
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "$log_tag: run as root (a throwaway dockerd, FIFOs in containers)" >&2; exit 1; }
# shellcheck source=tests/services.sh
. tests/services.sh

failures=${BENCH_FAILURES:-50}
window=${BENCH_WINDOW:-60}
# Not 1 s: one probe costs dockerd, containerd, the shim and runc about 45 ms
# of CPU here, and 50 containers probing every second would want more than two
# cores. Latency counts from the health_status event, so the interval only
# spreads the events further.
health_interval=${BENCH_HEALTH_INTERVAL:-10}
containers=${BENCH_CONTAINERS:-100}
cost_seconds=${BENCH_COST_SECONDS:-120}
footprint_seconds=${BENCH_FOOTPRINT_SECONDS:-50}
interval=15s
label="rtinspect-bench-events.$$"
began=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)
helper_pid=""
pids="$work/pids"
host=""

stop_bench() {
  if [ -n "$helper_pid" ]; then
    kill "$helper_pid" 2>/dev/null || true
    wait "$helper_pid" 2>/dev/null || true
    helper_pid=""
  fi
  # What the helper could not end itself (it was killed outright).
  if [ -s "$pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$pids"
    : >"$pids"
  fi
  # Containers on a daemon that is not ours (ours is removed with them).
  if [ -n "$host" ] && [ -z "$started_dockerd" ]; then
    for key in "$label.on" "$label.off" "$label.cost"; do
      docker -H "$host" ps -aq --filter "label=$key" 2>/dev/null |
        xargs -r docker -H "$host" rm -f >/dev/null 2>&1 || true
    done
  fi
}
# `cleanup` (tests/services.sh) stops the throwaway dockerd and exits with the
# status it is entered with: give it the script's (without errexit, which
# would end the trap at that very status).
trap 'rc=$?; set +e; stop_bench; (exit $rc); cleanup' EXIT

# Runs the measuring helper in the background, so that the trap can end it.
helper() {
  python3 tests/bench/events.py "$@" --pids "$pids" &
  helper_pid=$!
  local rc=0
  wait "$helper_pid" || rc=$?
  helper_pid=""
  return "$rc"
}

install_missing
for tool in dockerd docker python3; do
  command -v "$tool" >/dev/null || { log "$tool is missing"; exit 1; }
done
# A dockerd of our own unless told otherwise: its CPU is then rtinspect's and
# the idle daemon's only, and no other client's containers come and go.
bench_dockerd || exit 1
host=$bench_host
log "building (release)"
cargo build --release --quiet
cargo build --release --quiet --example fake_engine
rt=$PWD/target/release/rtinspect
engine_bin=$PWD/target/release/examples/fake_engine
# The footprint of the static musl binary that packaging ships too, when
# that target is installed: its allocator gives a different RSS.
builds=(--build "glibc, cargo build --release=$rt")
musl=$(uname -m)-unknown-linux-musl
if [ "${BENCH_MUSL:-1}" != 0 ] && rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  if cargo build --release --quiet --target "$musl"; then
    builds+=(--build "static musl, as packaged=$PWD/target/$musl/release/rtinspect")
  else
    log "the $musl build failed: its footprint is left out"
  fi
fi

if [ -n "$started_dockerd" ]; then
  dockerd_pid=$started_dockerd
  daemon_desc="a throwaway daemon of this run"
else
  daemon_desc="an existing daemon at $host, shared with its other clients"
  dockerd_pid=$(ss -xlpn 2>/dev/null | awk -v s="${host#unix://}" '$5 == s' |
    grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
  [ -n "$dockerd_pid" ] || { log "cannot find the process listening on $host"; exit 1; }
fi
# dockerd's containerd is its child when dockerd manages it; else the system's.
containerd_pid=$(pgrep -P "$dockerd_pid" -x containerd | head -n 1 || true)
[ -n "$containerd_pid" ] || containerd_pid=$(pgrep -o -x containerd || true)
[ -n "$containerd_pid" ] || { log "cannot find containerd"; exit 1; }

bench_image "$host"

# 1. Detection latency, events on, then off.
for mode in on off; do
  mkdir -p "$work/lat-$mode"
  helper latency --rtinspect "$rt" --docker-host "$host" --events "$mode" \
    --interval "$interval" --failures "$failures" --window "$window" \
    --health-interval "$health_interval" --label "$label.$mode" \
    --fifo-dir "$work/lat-$mode" --out "$work/latency-$mode.json"
done

# 2. Steady-state cost: no rtinspect, events off, events on.
helper cost --rtinspect "$rt" --docker-host "$host" --interval "$interval" \
  --daemon-pids "$dockerd_pid,$containerd_pid" --containers "$containers" \
  --seconds "$cost_seconds" --label "$label.cost" --work "$work" --out "$work/cost.json"

# 3. Footprint at 1,000 records on the fake engine, on and off side by side.
helper footprint "${builds[@]}" --engine "$engine_bin" --socket "$work/engine.sock" \
  --records 1000 --interval "$interval" --seconds "$footprint_seconds" --work "$work" \
  --out "$work/footprint.json"

settings=""
for v in BENCH_DOCKER_HOST BENCH_FAILURES BENCH_WINDOW BENCH_HEALTH_INTERVAL BENCH_CONTAINERS \
  BENCH_COST_SECONDS BENCH_FOOTPRINT_SECONDS BENCH_MUSL; do
  [ -n "${!v:-}" ] && settings+="$v=${!v} "
done
python3 - "$work/machine.json" "$(nproc)" \
  "$(docker -H "$host" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')" \
  "$daemon_desc" "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" \
  "${settings}tests/bench/events.sh${1:+ $1}" \
  "$(( ($(date +%s) - began) / 60 )) min $(( ($(date +%s) - began) % 60 )) s" "$interval" <<'PY'
import json, sys
out, nproc, dockerd, daemon, load_start, load_end, command, duration, interval = sys.argv[1:]
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({"nproc": nproc, "cpu": cpu, "mem": f"{mem / 1048576:.1f} GiB",
           "kernel": open("/proc/sys/kernel/osrelease").read().strip(), "dockerd": dockerd,
           "daemon": daemon, "load_start": load_start, "load_end": load_end,
           "command": command, "duration": duration, "interval": interval}, open(out, "w"))
PY
echo
python3 tests/bench/events.py table --machine "$work/machine.json" \
  --latency "$work/latency-on.json" "$work/latency-off.json" \
  --cost "$work/cost.json" --footprint "$work/footprint.json" ${result_file:+--file "$result_file"}
