#!/usr/bin/env bash
# The benchmark: rtinspect against the floor, against the Docker CLI, the
# records query, and the footprint of a long run. Public tools only
# (hyperfine, pgbench, /proc). Prints a Markdown table; leaves nothing running.
#
#   BENCH_SIZES              record counts for the floor comparison (10 100 1000 10000)
#   BENCH_CONTAINERS         real containers for the Docker CLI comparison (100)
#   BENCH_FOOTPRINT_SECONDS  length of the footprint run at a 15 s interval (180)
#
# Needs root for the throwaway dockerd and PostgreSQL (tests/services.sh).
set -euo pipefail

cd "$(dirname "$0")/../.."
log_tag=tests/bench/run.sh
# shellcheck source=tests/services.sh
. tests/services.sh
sizes=${BENCH_SIZES:-10 100 1000 10000}
containers=${BENCH_CONTAINERS:-100}
footprint_seconds=${BENCH_FOOTPRINT_SECONDS:-180}

install_missing
for tool in hyperfine curl; do
  command -v "$tool" >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$tool" >/dev/null
done
log "building (release)"
cargo build --release --quiet
cargo build --release --quiet --examples
rt=$PWD/target/release/rtinspect
engine_bin=$PWD/target/release/examples/fake_engine
floor_bin=$PWD/target/release/examples/floor_client
out="$work/results"
mkdir -p "$out"
engine_pid=""
rt_pid=""
stop_bench() {
  [ -n "$rt_pid" ] && kill "$rt_pid" 2>/dev/null || true
  [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null || true
  rt_pid=""; engine_pid=""
}
trap 'stop_bench; cleanup' EXIT

start_engine() { # SOCKET N
  "$engine_bin" "$1" "$2" >"$work/engine.out" &
  engine_pid=$!
  for _ in $(seq 1 50); do grep -q ready "$work/engine.out" 2>/dev/null && return; sleep 0.1; done
  log "the fake engine did not start"; exit 1
}

# median(s) of a hyperfine JSON export, in milliseconds, one per command
medians() {
  python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f'{r["median"] * 1000:.2f}')
PY
}

rows=()

# 1. One tick against the floor, on the fake engine.
for n in $sizes; do
  sock="$work/engine-$n.sock"
  start_engine "$sock" "$n"
  runs=$(( n >= 10000 ? 15 : 40 ))
  hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$out/floor-$n.json" \
    "$rt once --docker-host unix://$sock" "$floor_bin $sock" >/dev/null
  kill "$engine_pid"; engine_pid=""
  read -r ours floor < <(medians "$out/floor-$n.json" | paste -sd ' ')
  ratio=$(python3 -c "print(f'{$ours / $floor:.2f}')")
  rows+=("| floor, N=$n | \`rtinspect once\` ${ours} ms | floor client ${floor} ms | ${ratio}× |")
done

# 2. The real daemon: rtinspect once vs the Docker CLI's inspect, whole process.
start_dockerd
if [ -n "${RTINSPECT_TEST_DOCKER_HOST:-}" ]; then
  host=$RTINSPECT_TEST_DOCKER_HOST
  label="rtinspect-bench.$$"
  bench_image "$host"
  log "starting $containers containers"
  for i in $(seq 1 "$containers"); do
    docker -H "$host" run -d --network none --label "$label=g-$i" "$bench_image" sleep 100000 >/dev/null
  done
  hyperfine --style none --warmup 3 --runs 30 --export-json "$out/docker.json" \
    "$rt once --docker-host $host --label $label" \
    "docker -H $host inspect \$(docker -H $host ps -aq --filter label=$label) >/dev/null" >/dev/null
  read -r ours cli < <(medians "$out/docker.json" | paste -sd ' ')
  ratio=$(python3 -c "print(f'{$ours / $cli:.2f}')")
  rows+=("| real dockerd, $containers containers | \`rtinspect once\` ${ours} ms | \`docker inspect\` ${cli} ms | ${ratio}× |")
  docker -H "$host" ps -aq --filter "label=$label" | xargs -r docker -H "$host" rm -f >/dev/null
else
  log "no dockerd: the Docker CLI comparison is left out"
fi

# 3. The records query on PostgreSQL, 10,000 and 100,000 rows, 5% running.
start_postgres
if [ -n "${RTINSPECT_TEST_DATABASE_URL:-}" ]; then
  url=$RTINSPECT_TEST_DATABASE_URL
  "$rt" migrate --database-url "$url" >/dev/null
  echo "SELECT game_id, current_container_id FROM runtime_records WHERE status = 'running';" >"$work/q.sql"
  for rows_n in 10000 100000; do
    psql -q "$url" -c "TRUNCATE runtime_records;
      INSERT INTO runtime_records (game_id, status, current_container_id)
      SELECT 'g-' || i, CASE WHEN i % 20 = 0 THEN 'running' ELSE 'stopped' END, lpad(to_hex(i), 64, '0')
      FROM generate_series(1, $rows_n) i; ANALYZE runtime_records;" >/dev/null
    lat=$(pgbench -n -M prepared -f "$work/q.sql" -T 5 "$url" 2>/dev/null | awk '/latency average/ {print $4}')
    plan=$(psql -qAt "$url" -c "EXPLAIN ANALYZE SELECT game_id, current_container_id FROM runtime_records WHERE status = 'running'" |
      grep -oE 'Index Scan|Bitmap Index Scan|Index Only Scan|Seq Scan' | head -n 1)
    rows+=("| records query, $rows_n rows ($((rows_n / 20)) running) | ${lat} ms (pgbench, prepared) | plan: $plan | |")
  done
else
  log "no PostgreSQL: the records query is left out"
fi

# 4. Footprint: N=1,000 on the fake engine at the default 15 s interval, and
#    1,000 back-to-back ticks for growth.
sock="$work/engine-fp.sock"
start_engine "$sock" 1000
addr="127.0.0.1:$(( 30000 + RANDOM % 20000 ))"
"$rt" run --docker-host "unix://$sock" --interval 15s --metrics-addr "$addr" 2>/dev/null >/dev/null &
rt_pid=$!
sleep 2
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
start_cpu=$(cpu_ticks "$rt_pid"); start_t=$(date +%s.%N); peak=0; samples=()
end=$(( $(date +%s) + footprint_seconds ))
while [ "$(date +%s)" -lt "$end" ]; do
  r=$(rss_kib "$rt_pid"); samples+=("$r"); [ "$r" -gt "$peak" ] && peak=$r
  sleep 5
done
cpu=$(( $(cpu_ticks "$rt_pid") - start_cpu )); elapsed=$(python3 -c "import time; print(time.time() - $start_t)")
threads=$(awk '/^Threads/ {print $2}' "/proc/$rt_pid/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$rt_pid/status")
steady=${samples[-1]}
cpu_per_hour=$(python3 -c "print(f'{$cpu / $hz / $elapsed * 3600:.2f}')")
kill "$rt_pid"; wait "$rt_pid" 2>/dev/null || true; rt_pid=""
rows+=("| footprint, N=1000, 15 s interval, ${footprint_seconds} s | steady RSS $((steady / 1024)).$(( (steady % 1024) * 10 / 1024 )) MiB, peak $((hwm / 1024)).$(( (hwm % 1024) * 10 / 1024 )) MiB | ${cpu_per_hour} CPU s/hour, $threads threads | |")

"$rt" run --docker-host "unix://$sock" --interval 1ms --metrics-addr "$addr" 2>/dev/null >/dev/null &
rt_pid=$!
ticks() { curl -s "http://$addr/metrics" | awk '/^rtinspect_ticks_total/ {print $2}'; }
at100=""; for _ in $(seq 1 600); do t=$(ticks || echo 0); [ "${t:-0}" -ge 100 ] && { at100=$(rss_kib "$rt_pid"); break; }; sleep 0.1; done
for _ in $(seq 1 1200); do t=$(ticks || echo 0); [ "${t:-0}" -ge 1000 ] && break; sleep 0.1; done
at1000=$(rss_kib "$rt_pid")
kill "$rt_pid"; wait "$rt_pid" 2>/dev/null || true; rt_pid=""
kill "$engine_pid"; engine_pid=""
rows+=("| growth, N=1000, ticks 100 → 1,000 | RSS ${at100} KiB → ${at1000} KiB | | |")
size=$(stat -c %s "$rt")
rows+=("| binary (\`target/release\`, glibc) | $size bytes | | |")

echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); medians of hyperfine runs."
echo
echo "| workload | rtinspect | baseline | ratio |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
