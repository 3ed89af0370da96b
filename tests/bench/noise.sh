#!/usr/bin/env bash
# The noise benchmark: how many incidents and chat messages each everyday
# operation and each real failure produces, on a real dockerd with 20
# labelled games (a docker-compose project) and a local chat receiver
# (Slack's format, incidents). Every scenario gets a fresh rtinspect and a
# fresh project, then a fixed window; the messages and incident events that
# window brought are its row. Public tools only: bash, python3, the docker
# CLI, Debian's docker-compose 1.29. Prints a Markdown table, also written to
# FILE when given; leaves nothing running.
#
#   tests/bench/noise.sh [FILE]
#
#   BENCH_DOCKER_HOST   measure on this dockerd (e.g. the value of
#                       RTINSPECT_TEST_DOCKER_HOST) instead of a throwaway one
#   BENCH_OLD_BIN       another rtinspect to measure beside this one (e.g. a
#                       build of an earlier commit): a second column
#   BENCH_WINDOW        seconds each scenario is watched after it (45)
#
# rtinspect runs with `--interval 5s --recover-after 10s` (shorter than the
# defaults, so that a false incident also shows its resolution within the
# window) and otherwise the defaults: events on, a crash loop at 3 restarts.
# A scenario's row counts every incident event rtinspect printed on stdout
# and every request the chat receiver got (a burst waits 2 s and goes as one
# digest), from the scenario's start to the end of its window. About 11
# minutes for one build once built (7 min 40 s with BENCH_WINDOW=20, each of
# the 8 windows 25 s shorter), twice that with BENCH_OLD_BIN.
set -euo pipefail

log_tag=tests/bench/noise.sh
result_file=${1:-}
if [ -n "$result_file" ]; then
  result_file=$(realpath -m -- "$result_file")
fi
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "$log_tag: run as root (kill -9 of a game's process, a throwaway dockerd)" >&2; exit 1; }
# shellcheck source=tests/services.sh
. tests/services.sh

window=${BENCH_WINDOW:-45}
games=20
label="rtinspect-bench-noise.$$"
project="rtnoise$$"
image=$bench_image
rt_pid=""
hook_pid=""
host=""

stop_bench() {
  # A measure runs in a subshell: its rtinspect's pid is in a file.
  [ -s "$work/rt.pid" ] && { kill "$(cat "$work/rt.pid")" 2>/dev/null || true; }
  [ -n "$hook_pid" ] && { kill "$hook_pid" 2>/dev/null || true; wait "$hook_pid" 2>/dev/null || true; }
  rt_pid=""; hook_pid=""
  if [ -n "$host" ]; then
    DOCKER_HOST=$host docker-compose -p "$project" -f "$work/compose.yml" down -t 1 >/dev/null 2>&1 || true
    docker -H "$host" ps -aq --filter "label=$label" 2>/dev/null |
      xargs -r docker -H "$host" rm -f >/dev/null 2>&1 || true
  fi
}
trap 'rc=$?; set +e; stop_bench; (exit $rc); cleanup' EXIT

install_missing
for tool in docker docker-compose python3; do
  command -v "$tool" >/dev/null || { log "$tool is missing"; exit 1; }
done
log "building (release)"
cargo build --release --quiet
new_bin=$PWD/target/release/rtinspect
old_bin=${BENCH_OLD_BIN:-}

bench_dockerd || exit 1
host=$bench_host
dk() { docker -H "$host" "$@"; }
bench_image "$host"

# The project: 20 games that run until stopped, under the label.
{
  echo 'version: "2.4"'
  echo 'services:'
  for i in $(seq 0 $((games - 1))); do
    cat <<EOF
  game$i:
    image: $image
    command: ["sleep", "1000000"]
    network_mode: none
    stop_grace_period: 1s
    labels:
      $label: game-$i
EOF
  done
} >"$work/compose.yml"
compose() { DOCKER_HOST=$host docker-compose -p "$project" -f "$work/compose.yml" "$@" >/dev/null 2>&1; }

# The chat receiver: each request's body a line of its file.
cat >"$work/hook.py" <<'EOF'
import http.server, sys
out = sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
: >"$work/hook.lines"
python3 "$work/hook.py" "$port" "$work/hook.lines" &
hook_pid=$!

lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
incidents() { [ -f "$1" ] && grep -c '"event_type":"incident_' "$1" || true; }

# One scenario with one build: a fresh project, a fresh rtinspect, the
# scenario, the window; prints "incident events<TAB>chat messages".
measure() {
  local bin=$1 scenario=$2
  local state="$work/state-$RANDOM" out="$work/out-$RANDOM"
  mkdir -p "$state"
  compose down -t 1 || true
  dk ps -aq --filter "label=$label" | xargs -r docker -H "$host" rm -f >/dev/null 2>&1 || true
  compose up -d
  prepare "$scenario"
  "$bin" run --label "$label" --docker-host "$host" --interval 5s --recover-after 10s \
    --state-dir "$state" --sink stdout,webhook --report incidents \
    --webhook-url "http://127.0.0.1:$port/hook" --webhook-format slack \
    >"$out" 2>"$out.log" &
  rt_pid=$!
  echo "$rt_pid" >"$work/rt.pid"
  # Its first tick has seen every game (and a failure's container) running.
  sleep 8
  local hook_before
  hook_before=$(lines "$work/hook.lines")
  local inc_before
  inc_before=$(incidents "$out")
  run_scenario "$bin" "$scenario" "$state"
  sleep "$window"
  local inc hook
  inc=$(($(incidents "$out") - inc_before))
  hook=$(($(lines "$work/hook.lines") - hook_before))
  kill "$rt_pid" 2>/dev/null || true
  wait "$rt_pid" 2>/dev/null || true
  rt_pid=""
  : >"$work/rt.pid"
  printf '%s\t%s\n' "$inc" "$hook"
}

# What a scenario needs before rtinspect starts: a failing game of its own.
prepare() {
  case $1 in
    exit3) dk run -d --network none --label "$label=g-exit3" "$image" \
             sh -c 'sleep 12; exit 3' >/dev/null ;;
    hostkill) dk run -d --network none --label "$label=g-hostkill" "$image" \
             sleep 1000000 >/dev/null ;;
    oom) dk run -d --network none --label "$label=g-oom" --memory 32m --memory-swap 32m \
             "$image" sh -c 'sleep 12; x=$(head -c 64m /dev/urandom); sleep 1000000' >/dev/null ;;
  esac
}

run_scenario() {
  local bin=$1 scenario=$2 state=$3 i id
  case $scenario in
    recreate) compose up -d --force-recreate ;;
    stop) for i in 0 1 2 3 4; do dk stop -t 1 "$(container_of "$i")" >/dev/null; done ;;
    restart) for i in 5 6 7 8 9; do dk restart -t 1 "$(container_of "$i")" >/dev/null; done ;;
    deploy)
      # Each of 5 games replaced by a new container of the same game id,
      # one after the other, as a deploy tool does it.
      for i in 10 11 12 13 14; do
        id=$(container_of "$i")
        dk stop -t 1 "$id" >/dev/null
        dk rm "$id" >/dev/null
        dk run -d --network none --label "$label=game-$i" "$image" sleep 1000000 >/dev/null
        sleep 2
      done ;;
    silence)
      # The script that causes the downtime silences every game first
      # (a build without silences stops them all the same).
      if "$bin" silence --help >/dev/null 2>&1; then
        "$bin" silence add --all --for 3m --comment bench \
          --label "$label" --state-dir "$state" >/dev/null
      fi
      # (Waited for by pid: rtinspect runs in the background too.)
      local pids=()
      for i in $(seq 0 $((games - 1))); do
        dk stop -t 1 "$(container_of "$i")" >/dev/null &
        pids+=($!)
      done
      wait "${pids[@]}"
      sleep 60
      pids=()
      for i in $(seq 0 $((games - 1))); do
        dk start "$(dk ps -aq --filter "label=$label=game-$i" | head -n 1)" >/dev/null &
        pids+=($!)
      done
      wait "${pids[@]}"
      sleep 15
      if "$bin" silence --help >/dev/null 2>&1; then
        "$bin" silence end --all --label "$label" --state-dir "$state" >/dev/null
      fi ;;
    exit3) ;; # it exits by itself 12 s after its start
    hostkill) kill -9 "$(dk inspect -f '{{.State.Pid}}' "$(container_of hostkill)")" ;;
    oom) ;;   # it allocates 64 MiB 12 s after its start
  esac
}
# The failing games carry game ids of their own.
container_of() {
  case $1 in
    hostkill) dk ps -q --no-trunc --filter "label=$label=g-hostkill" ;;
    *) dk ps -q --no-trunc --filter "label=$label=game-$1" | head -n 1 ;;
  esac
}

scenarios=(recreate stop restart deploy silence exit3 hostkill oom)
declare -A name=(
  [recreate]="docker-compose up -d --force-recreate, 20 games"
  [stop]="docker stop of 5 games"
  [restart]="docker restart of 5 games"
  [deploy]="a deploy replacing 5 containers, one by one"
  [silence]="a silence around stopping all 20 for a minute"
  [exit3]="a game exits 3 by itself"
  [hostkill]="a game's process killed with kill -9 from the host"
  [oom]="a game runs out of memory (--memory 32m, 64 MiB)"
)
declare -A new old
for s in "${scenarios[@]}"; do
  new[$s]=$(measure "$new_bin" "$s")
  log "$s (this build): ${new[$s]/$'\t'/ incidents, } messages"
  if [ -n "$old_bin" ]; then
    old[$s]=$(measure "$old_bin" "$s")
    log "$s (BENCH_OLD_BIN): ${old[$s]/$'\t'/ incidents, } messages"
  fi
done

fmt() { local v=$1; printf '%s incidents, %s messages' "${v%%$'\t'*}" "${v##*$'\t'}"; }
{
  echo "Noise: incident events on stdout and chat requests (Slack format) per scenario, $games labelled games, a window of ${window} s after each (\`--interval 5s --recover-after 10s\`), on $(dk version -f '{{.Server.Version}}' 2>/dev/null || echo '?')."
  echo
  if [ -n "$old_bin" ]; then
    echo "| scenario | BENCH_OLD_BIN | this build |"
    echo "|---|---|---|"
    for s in "${scenarios[@]}"; do echo "| ${name[$s]} | $(fmt "${old[$s]}") | $(fmt "${new[$s]}") |"; done
  else
    echo "| scenario | this build |"
    echo "|---|---|"
    for s in "${scenarios[@]}"; do echo "| ${name[$s]} | $(fmt "${new[$s]}") |"; done
  fi
} | tee "${result_file:-/dev/null}"
