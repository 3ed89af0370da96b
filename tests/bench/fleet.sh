#!/usr/bin/env bash
# The fleet simulation: BENCH_FLEET_HOSTS rtinspect processes (200), each
# with a fake Docker engine of its own (25 records, one of them stopped, so
# each tick emits one event), against one PostgreSQL through PgBouncer in
# transaction pooling mode, all in one records table of 100,000+ records.
# At a 1 s interval each process makes the queries of 15 hosts at the
# default 15 s: 200 processes are the load of a 3,000-host fleet.
#
# Measures, over BENCH_FLEET_SECONDS (180) after BENCH_FLEET_WARMUP (20):
# the records transaction's latency as a client sees it through PgBouncer
# (p50/p99 of a pgbench probe running the same statements at 10/s), the
# server's time per statement (pg_stat_statements, which has means but no
# percentiles), the CPU of PostgreSQL, PgBouncer, the daemons and the fake
# engines (/proc), events stored per second, errors (warnings and errors in
# every daemon's log, errors in PostgreSQL's and PgBouncer's), the memory of
# the whole setup (PSS), and the events table's bytes per row. Prints a
# Markdown table; leaves nothing running.
#
#   BENCH_FLEET_HOSTS    rtinspect processes (200)
#   BENCH_FLEET_SECONDS  measured time (180), after BENCH_FLEET_WARMUP (20)
#   BENCH_FLEET_STOPPED  stopped records per host, events per host per tick (1)
#   BENCH_FLEET_NOTIFY   on, or off for --notify-channel '' (on)
#
# Needs root (the throwaway PostgreSQL and PgBouncer of tests/services.sh,
# here with pg_stat_statements preloaded and fsync on).
set -euo pipefail

cd "$(dirname "$0")/../.."
log_tag=tests/bench/fleet.sh
hosts=${BENCH_FLEET_HOSTS:-200}
seconds=${BENCH_FLEET_SECONDS:-180}
warmup=${BENCH_FLEET_WARMUP:-20}
per_host=25             # running records per host, as the engines serve them
stopped=${BENCH_FLEET_STOPPED:-1} # of which stopped: events per host per tick
notify=${BENCH_FLEET_NOTIFY:-on}  # off: rows without NOTIFY
fleet=$(( hosts * 15 )) # the hosts the records table stands for
filler=9                # stopped records per host besides: 34 per host in all

# fsync on: commits cost what they cost on a real server's disk.
PG_SERVER_OPTS="-c fsync=on -c shared_preload_libraries=pg_stat_statements \
  -c pg_stat_statements.track_planning=on"
# PgBouncer's defaults, but room for every daemon's two connections.
PGBOUNCER_SETTINGS="max_client_conn = $(( hosts * 2 + 50 ))
default_pool_size = 20"
# shellcheck source=tests/services.sh
. tests/services.sh

rt_pids=()
engine_pid=""
stop_fleet() {
  local pid
  for pid in "${rt_pids[@]}" $engine_pid; do kill "$pid" 2>/dev/null || true; done
  for pid in "${rt_pids[@]}" $engine_pid; do wait "$pid" 2>/dev/null || true; done
  rt_pids=(); engine_pid=""
}
trap 'stop_fleet; cleanup' EXIT

install_missing
command -v pgbench >/dev/null || { log "pgbench is missing (postgresql-client)"; exit 1; }
log "building (release)"
cargo build --release --quiet
cargo build --release --quiet --example fleet_engine
rt=$PWD/target/release/rtinspect
engine_bin=$PWD/target/release/examples/fleet_engine

start_postgres
direct=${RTINSPECT_TEST_DATABASE_URL:?no PostgreSQL started (root, postgresql and the postgres user needed)}
bouncer=${RTINSPECT_TEST_PGBOUNCER_URL:?no PgBouncer started (pgbouncer needed)}
q() { psql -qAtX -v ON_ERROR_STOP=1 "$direct" -c "$1"; }
pool=$(psql -qAtX "${bouncer/dbname=postgres/dbname=pgbouncer}" -c "SHOW CONFIG" |
  awk -F'|' '$1 == "pool_mode" {m = $2} $1 == "default_pool_size" {n = $2} END {print m " pooling, pool of " n}')

log "records: $fleet hosts × $(( per_host + filler )) records, $per_host running each"
q "CREATE EXTENSION pg_stat_statements" >/dev/null
"$rt" migrate --database-url "$bouncer" --host-column host >/dev/null
q "INSERT INTO runtime_records (game_id, status, current_container_id, host)
   SELECT 'h-' || h || '-g' || n, CASE WHEN n <= $per_host THEN 'running' ELSE 'stopped' END,
          lpad(to_hex(n), 64, '0'), 'h-' || h
   FROM generate_series(0, $fleet - 1) h, generate_series(1, $(( per_host + filler ))) n"
q "VACUUM ANALYZE runtime_records"
total_records=$(q "SELECT count(*) FROM runtime_records")
plan=$(q "EXPLAIN SELECT game_id, current_container_id FROM runtime_records
          WHERE status = 'running' AND host = 'h-7'" | grep -oE 'Index Only Scan|Index Scan|Bitmap Heap Scan|Seq Scan' | head -n 1)

log "starting $hosts fake engines and $hosts rtinspect processes (1 s interval)"
mkdir -p "$work/engines" "$work/logs"
"$engine_bin" "$work/engines" "$hosts" "$per_host" "$stopped" >"$work/engine.out" &
engine_pid=$!
for _ in $(seq 1 100); do grep -q ready "$work/engine.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/engine.out" || { log "the fake engines did not start"; exit 1; }
for i in $(seq 0 $(( hosts - 1 ))); do
  RUST_LOG=info "$rt" run --database-url "$bouncer" --host-column host --host-id "h-$i" \
    $( [ "$notify" = on ] || echo --notify-channel= ) \
    --interval 1s --docker-host "unix://$work/engines/h$i.sock" \
    >/dev/null 2>"$work/logs/h$i.log" &
  rt_pids+=($!)
done
sleep "$warmup"

# CPU seconds (user + system) of a list of pids, one "pid ticks" per line.
cpu_of() { local p; for p in "$@"; do [ -r "/proc/$p/stat" ] && awk -v p="$p" '{print p, $14 + $15}' "/proc/$p/stat" 2>/dev/null; done; true; }
pg_pids() {
  local pm; pm=$(head -n 1 "$work/pg/data/postmaster.pid")
  echo "$pm"; pgrep -P "$pm" || true
}
bouncer_pid=$(cat "$work/pgbouncer/pgbouncer.pid")
snapshot() { # FILE: every process's CPU ticks, by group
  { cpu_of $(pg_pids) | sed 's/^/pg /'
    cpu_of "$bouncer_pid" | sed 's/^/bouncer /'
    cpu_of "${rt_pids[@]}" | sed 's/^/rt /'
    cpu_of "$engine_pid" | sed 's/^/engine /'; } >"$1"
}
# Cores used by a group between two snapshots (a process new since the first counts from 0).
cores() { # GROUP BEFORE AFTER SECONDS
  awk -v g="$1" -v s="$4" -v hz="$(getconf CLK_TCK)" '
    FNR == NR { if ($1 == g) before[$2] = $3; next }
    $1 == g { used += $3 - (($2 in before) ? before[$2] : 0) }
    END { printf "%.3f", used / hz / s }' "$2" "$3"
}

log "measuring for $seconds s"
q "SELECT pg_stat_statements_reset()" >/dev/null
events_before=$(q "SELECT count(*) FROM runtime_health_events")
snapshot "$work/cpu.before"
t0=$(date +%s.%N)
cat >"$work/probe.sql" <<SQL
\set h random(0, $(( fleet - 1 )))
BEGIN READ ONLY;
SET LOCAL statement_timeout = 30000;
SELECT game_id, current_container_id FROM runtime_records WHERE status = 'running' AND host = 'h-' || :h;
COMMIT;
SQL
( cd "$work" && pgbench -n -M extended -f probe.sql -R 10 -T "$seconds" -c 1 -j 1 \
    --log --log-prefix=probe "$bouncer" >"$work/pgbench.out" 2>&1 ) &
probe_pid=$!
sleep $(( seconds / 2 ))
pss_kib() { local p; for p in "$@"; do awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
mem_pg=$(pss_kib $(pg_pids)); mem_bouncer=$(pss_kib "$bouncer_pid")
mem_rt=$(pss_kib "${rt_pids[@]}"); mem_engine=$(pss_kib "$engine_pid")
rss_rt=$(for p in "${rt_pids[@]}"; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | sort -n | awk '{a[NR] = $1} END {print a[int(NR / 2) + 1]}')
wait "$probe_pid" || { log "the probe failed:"; cat "$work/pgbench.out" >&2; exit 1; }
t1=$(date +%s.%N)
snapshot "$work/cpu.after"
events_after=$(q "SELECT count(*) FROM runtime_health_events")
window=$(python3 -c "print($t1 - $t0)")
alive=0; for p in "${rt_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$(( alive + 1 )); done

cores_pg=$(cores pg "$work/cpu.before" "$work/cpu.after" "$window")
cores_bouncer=$(cores bouncer "$work/cpu.before" "$work/cpu.after" "$window")
cores_rt=$(cores rt "$work/cpu.before" "$work/cpu.after" "$window")
cores_engine=$(cores engine "$work/cpu.before" "$work/cpu.after" "$window")
events_per_s=$(python3 -c "print(f'{($events_after - $events_before) / $window:.1f}')")
# A probe log line: client, number, latency µs, script, epoch s, µs, schedule
# lag µs; with --rate the latency counts from the scheduled start, so a
# probe that fell behind would report its own backlog: take the lag out.
read -r probe_n p50 p99 < <(cat "$work"/probe.* 2>/dev/null | awk '{print $3 - $7}' | sort -n |
  awk '{a[NR] = $1} END {printf "%d %.3f %.3f\n", NR, a[int(NR * 0.5) + 1] / 1000, a[int(NR * 0.99) + 1] / 1000}')
# The server's view: every statement of the records read and of the sink.
stmts=$(q "SELECT calls, round((total_exec_time / calls)::numeric, 3), round((total_plan_time / calls)::numeric, 3),
                  round(max_exec_time::numeric, 2), round(rows::numeric / calls, 1),
                  round(total_exec_time::numeric / 1000, 2), regexp_replace(left(query, 60), '\s+', ' ', 'g')
           FROM pg_stat_statements WHERE calls > 0 ORDER BY total_exec_time DESC LIMIT 8" | tr '|' '\t')
read -r rq_calls rq_exec rq_plan rq_max rq_rows < <(q "SELECT calls, round((total_exec_time / calls)::numeric, 3),
    round((total_plan_time / calls)::numeric, 3), round(max_exec_time::numeric, 2), round(rows::numeric / calls, 1)
    FROM pg_stat_statements WHERE calls > 0 AND query LIKE 'SELECT game_id, current_container_id FROM \"runtime_records\"%'
    ORDER BY calls DESC LIMIT 1" | tr '|' ' ')
queries_per_s=$(python3 -c "print(f'{$rq_calls / $window:.1f}')")
bytes_per_event=$(q "SELECT pg_total_relation_size('runtime_health_events') / greatest(count(*), 1) FROM runtime_health_events")
warnings=$(cat "$work"/logs/*.log | grep -cE ' (WARN|ERROR) ' || true)
pg_errors=$(grep -cE 'ERROR|FATAL|PANIC' "$work/pg/server.log" || true)
bouncer_errors=$(grep -cE ' (ERROR|WARNING) ' "$work/pgbouncer/pgbouncer.log" || true)
server_conns=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
stop_fleet

hosts_per_pg_core=$(python3 -c "print(f'{$fleet / max($cores_pg, 1e-9):,.0f}')")
hosts_per_bouncer_core=$(python3 -c "print(f'{$fleet / max($cores_bouncer, 1e-9):,.0f}')")
growth_day=$(python3 -c "print(f'{$events_per_s * 86400 * $bytes_per_event / 2**30:.1f}')")

echo
echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); PostgreSQL $(q 'SHOW server_version' | cut -d' ' -f1) (fsync on), $(pgbouncer --version | head -n 1) ($pool)."
echo "$hosts rtinspect processes at 1 s = the query load of $fleet hosts at 15 s; $per_host running records per host, $stopped stopped (an event each every tick: $(( hosts * stopped )) emitted a second), NOTIFY $notify; ${window%.*} s measured after ${warmup} s."
echo
echo "| measure | value |"
echo "|---|---|"
echo "| records table | $total_records rows, $(( fleet * per_host )) running; plan: $plan |"
echo "| records queries | $queries_per_s /s, $rq_rows rows each |"
echo "| records transaction through PgBouncer (probe, $probe_n samples) | p50 $p50 ms, p99 $p99 ms |"
echo "| records query on the server (pg_stat_statements) | plan $rq_plan ms + execute $rq_exec ms mean, max $rq_max ms |"
echo "| events stored | $events_per_s /s |"
echo "| PostgreSQL CPU | $cores_pg cores |"
echo "| PgBouncer CPU | $cores_bouncer cores |"
echo "| rtinspect CPU, all $hosts | $cores_rt cores |"
echo "| fake engines CPU | $cores_engine cores |"
echo "| errors | $warnings warnings or errors in the daemons' logs, $pg_errors in PostgreSQL's, $bouncer_errors in PgBouncer's; $alive of $hosts daemons alive |"
echo "| connections | $(( hosts * 2 )) clients to PgBouncer, $server_conns server connections |"
echo "| memory (PSS) | rtinspect $(( mem_rt / 1024 )) MiB in all (median RSS $(( rss_rt / 1024 )).$(( (rss_rt % 1024) * 10 / 1024 )) MiB each), engines $(( mem_engine / 1024 )) MiB, PgBouncer $(( mem_bouncer / 1024 )) MiB, PostgreSQL $(( mem_pg / 1024 )) MiB; $(( (mem_rt + mem_engine + mem_bouncer + mem_pg) / 1024 )) MiB in all |"
echo "| events table | $bytes_per_event bytes per event with indexes: $growth_day GiB a day at this rate |"
echo "| extrapolated, 15 s interval | $hosts_per_pg_core hosts per PostgreSQL core, $hosts_per_bouncer_core per PgBouncer core ($stopped events per host per tick) |"
echo
echo "Server time by statement (pg_stat_statements: calls, mean exec ms, mean plan ms, max ms, rows/call, total s, query):"
echo
printf '%s\n' "$stmts" | sed 's/^/    /'
[ "$warnings" = 0 ] && [ "$alive" = "$hosts" ] || { log "the fleet logged warnings or lost daemons"; exit 1; }
