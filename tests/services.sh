# Sourced by tests/run.sh and the benchmarks in tests/bench/: installs what is
# missing and starts throwaway services, stopped again when the sourcing script
# exits.
#
#   install_missing      docker.io, busybox-static, postgresql, pgbouncer,
#                        prometheus, file, iptables, podman, docker-compose,
#                        chromium (the status page's screenshot)
#   start_dockerd        exports RTINSPECT_TEST_DOCKER_HOST: the one named, the
#                        system's, or a throwaway dockerd (needs root)
#   start_postgres       exports RTINSPECT_TEST_DATABASE_URL: a throwaway cluster
#                        on a Unix socket (needs root and the postgres user);
#                        PG_SERVER_OPTS adds server options (-c name=value).
#                        Then starts PgBouncer in front of it, in transaction
#                        pooling mode, and exports RTINSPECT_TEST_PGBOUNCER_URL
#                        (TCP on 127.0.0.1). Its settings are PgBouncer's
#                        defaults but for a pool of 2 server connections, so
#                        that consecutive transactions of one client land on
#                        different server connections, as on a busy pool;
#                        PGBOUNCER_SETTINGS adds lines to its [pgbouncer]
#                        section (a later line wins).
#   start_podman         exports RTINSPECT_TEST_PODMAN_HOST: the one named, or a
#                        throwaway Podman API service (needs root and podman)
#   bench_dockerd        sets bench_host: the dockerd BENCH_DOCKER_HOST names
#                        (it must answer), or a throwaway one (needs root)
#   bench_image HOST     imports $bench_image (static busybox, from scratch)
#                        into the dockerd at HOST unless it has it
#
# Set `log_tag` before sourcing to name the caller in messages.

work=$(mktemp -d /tmp/rtinspect-run.XXXXXX)
started_dockerd=""
started_pg=""
started_pgbouncer=""
pgbin=""
started_podman=""
podman_ns=""
pg_port=""

log() { printf '%s: %s\n' "${log_tag:-tests}" "$*" >&2; }

cleanup() {
  local rc=$?
  if [ -n "$started_dockerd" ]; then
    log "stopping the throwaway dockerd"
    # Remove what the tests may have left, then stop the daemon.
    docker -H "unix://$work/docker.sock" ps -aq 2>/dev/null |
      xargs -r docker -H "unix://$work/docker.sock" rm -f >/dev/null 2>&1 || true
    kill "$started_dockerd" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$started_dockerd" 2>/dev/null || true
    umount -R "$work/docker-data" 2>/dev/null || true
  fi
  if [ -n "$started_pgbouncer" ]; then
    log "stopping the throwaway PgBouncer"
    kill "$(cat "$work/pgbouncer/pgbouncer.pid" 2>/dev/null)" 2>/dev/null || true
  fi
  if [ -n "$started_pg" ]; then
    log "stopping the throwaway PostgreSQL"
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  stop_podman
  rm -rf "$work" 2>/dev/null || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_missing() {
  local need_install=()
  command -v dockerd >/dev/null || need_install+=(docker.io)
  command -v docker >/dev/null || need_install+=(docker.io)
  [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' ||
    need_install+=(busybox-static)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_install+=(postgresql)
  command -v pgbouncer >/dev/null || need_install+=(pgbouncer)
  command -v file >/dev/null || need_install+=(file)
  { command -v promtool && command -v prometheus; } >/dev/null || need_install+=(prometheus)
  command -v chromium >/dev/null || need_install+=(chromium)
  command -v iptables >/dev/null || need_install+=(iptables)
  command -v podman >/dev/null || need_install+=(podman)
  # Debian's docker-compose 1.29: the tests and the noise benchmark recreate
  # projects with it.
  command -v docker-compose >/dev/null || need_install+=(docker-compose)
  if [ ${#need_install[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing ${need_install[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >/dev/null
      apt-get install -y -q --no-install-recommends "${need_install[@]}" >/dev/null
    else
      log "missing ${need_install[*]} and cannot install (not root, or no apt-get)"
    fi
  fi
}

ping_docker() {
  curl -sf --max-time 5 --unix-socket "$1" http://docker/_ping >/dev/null 2>&1 ||
    docker -H "unix://$1" version >/dev/null 2>&1
}

# Starts a dockerd of its own on socket $1 (data and exec roots under $work,
# no bridge, no iptables), sets started_dockerd, and waits up to a minute for
# it to answer; fails, with its log, when it does not.
throwaway_dockerd() {
  log "starting a throwaway dockerd on $1"
  dockerd --data-root "$work/docker-data" --exec-root "$work/docker-exec" \
    -H "unix://$1" --pidfile "$work/docker.pid" \
    --bridge=none --iptables=false --ip6tables=false \
    >"$work/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 120); do
    ping_docker "$1" && return 0
    kill -0 "$started_dockerd" 2>/dev/null || break
    sleep 0.5
  done
  ping_docker "$1" && return 0
  log "dockerd did not start; its log:"
  tail -n 30 "$work/dockerd.log" >&2 || true
  return 1
}

# The dockerd a benchmark measures: BENCH_DOCKER_HOST when set, else a
# throwaway one of this run (started_dockerd then says its pid).
bench_dockerd() {
  if [ -n "${BENCH_DOCKER_HOST:-}" ]; then
    ping_docker "${BENCH_DOCKER_HOST#unix://}" ||
      { log "no dockerd answers at $BENCH_DOCKER_HOST"; return 1; }
    bench_host=$BENCH_DOCKER_HOST
  else
    throwaway_dockerd "$work/docker.sock" || return 1
    bench_host="unix://$work/docker.sock"
  fi
}

# The image the benchmarks run: Debian's static busybox and a link per applet
# they use, imported from scratch, as no registry is reached. A tag of its
# own: the tests' rtinspect-test/busybox:1 (tests/support/docker.rs) has
# fewer applets, and a benchmark may share the tests' dockerd.
bench_image=rtinspect-bench/busybox:1
bench_image() {
  docker -H "$1" image inspect "$bench_image" >/dev/null 2>&1 && return 0
  log "importing $bench_image"
  local img="$work/bench-image" applet
  mkdir -p "$img/bin"
  cp /bin/busybox "$img/bin/"
  for applet in sh sleep true false kill test touch head; do ln -sf busybox "$img/bin/$applet"; done
  tar -C "$img" -c . | docker -H "$1" import - "$bench_image" >/dev/null
}

start_dockerd() {
  local docker_socket="${RTINSPECT_TEST_DOCKER_HOST:-}"
  docker_socket="${docker_socket#unix://}"
  if [ -z "$docker_socket" ] || ! ping_docker "$docker_socket"; then
    if ping_docker /var/run/docker.sock; then
      docker_socket=/var/run/docker.sock
    elif command -v dockerd >/dev/null && [ "$(id -u)" = 0 ]; then
      docker_socket="$work/docker.sock"
      throwaway_dockerd "$docker_socket" || docker_socket=""
    else
      docker_socket=""
    fi
  fi
  if [ -n "$docker_socket" ]; then
    export RTINSPECT_TEST_DOCKER_HOST="unix://$docker_socket"
  else
    unset RTINSPECT_TEST_DOCKER_HOST
  fi
}

start_postgres() {
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] && id postgres >/dev/null 2>&1; then
    mkdir -p "$work/pg"
    chown postgres "$work/pg"
    chmod 755 "$work"
    pg_port=$(( 20000 + RANDOM % 20000 ))
    log "starting a throwaway PostgreSQL on $work/pg (port $pg_port)"
    runuser -u postgres -- "$pgbin/initdb" -D "$work/pg/data" -U postgres -A trust \
      --no-sync >"$work/initdb.log" 2>&1
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w \
      -o "-k $work/pg -p $pg_port -c listen_addresses= -c fsync=off ${PG_SERVER_OPTS:-}" \
      start >/dev/null
    started_pg=1
    export RTINSPECT_TEST_DATABASE_URL="host=$work/pg port=$pg_port user=postgres dbname=postgres"
    start_pgbouncer
  fi
}

# Podman's Docker-compatible API (Debian's podman 4.3 serves API 1.41), with
# every path of its own under $work: storage (--root), run state (--runroot),
# its tmp dir (events log, exit files), volumes and network configs. It runs in
# a mount namespace of its own where /var/lib is an overlay whose writes land
# in $work too, because the image library writes its blob-info cache to
# /var/lib/containers/cache whatever the roots; the containers' own mounts
# live and die with that namespace. No systemd here: --cgroup-manager cgroupfs,
# and --events-backend file (the journal backend needs journald).
# `podman --remote --url $RTINSPECT_TEST_PODMAN_HOST` is the CLI for it.
start_podman() {
  local socket="${RTINSPECT_TEST_PODMAN_HOST:-}"
  socket="${socket#unix://}"
  if [ -n "$socket" ] && ping_docker "$socket"; then
    export RTINSPECT_TEST_PODMAN_HOST="unix://$socket"
    return
  fi
  unset RTINSPECT_TEST_PODMAN_HOST
  if ! command -v podman >/dev/null || [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
    log "no Podman (needs root, unshare and Debian's podman)"
    return
  fi
  local p="$work/podman"
  socket="$work/podman.sock"
  mkdir -p "$p/tmp" "$p/var-lib" "$p/var-lib.work"
  log "starting a throwaway Podman API service on $socket"
  # shellcheck disable=SC2016 # expanded by the inner shell
  TMPDIR="$p/tmp" unshare --mount --propagation private sh -c '
    p=$1; shift
    mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$p/var-lib,workdir=$p/var-lib.work" /var/lib ||
      echo "/var/lib could not be overlaid: the blob-info cache goes to /var/lib/containers/cache" >&2
    exec "$@"' sh "$p" \
    podman --root "$p/root" --runroot "$p/run" --tmpdir "$p/tmp" --volumepath "$p/volumes" \
      --network-config-dir "$p/networks" --cgroup-manager cgroupfs --events-backend file \
      system service --time=0 "unix://$socket" >"$work/podman.log" 2>&1 &
  started_podman=$!
  for _ in $(seq 1 120); do
    ping_docker "$socket" && break
    kill -0 "$started_podman" 2>/dev/null || break
    sleep 0.25
  done
  if ping_docker "$socket"; then
    podman_ns=$(readlink "/proc/$started_podman/ns/mnt" 2>/dev/null || true)
    export RTINSPECT_TEST_PODMAN_HOST="unix://$socket"
  else
    log "the Podman service did not start; its log:"
    tail -n 30 "$work/podman.log" >&2 || true
  fi
}

# Stops what start_podman started: the containers first (conmon keeps them,
# and exec sessions, alive after the service is gone), then the service, then
# whatever is left in its mount namespace.
stop_podman() {
  [ -n "$started_podman" ] || return 0
  log "stopping the throwaway Podman"
  timeout 60 podman --remote --url "unix://$work/podman.sock" rm -af -t 0 >/dev/null 2>&1 || true
  kill "$started_podman" 2>/dev/null || true
  local _
  for _ in $(seq 1 100); do
    # Gone, or a zombie (it died before: the trap has not reaped it).
    case "$(ps -o stat= -p "$started_podman" 2>/dev/null)" in "" | Z*) break ;; esac
    sleep 0.1
  done
  kill -9 "$started_podman" 2>/dev/null || true
  if [ -n "$podman_ns" ] && [ "$podman_ns" != "$(readlink /proc/self/ns/mnt)" ]; then
    # What is left when the service could not remove its containers (it
    # died): conmons in its namespace, and their children, the containers'
    # first processes, each in namespaces of its own (killing one ends its
    # container).
    local pattern link pid child pids=()
    pattern=$(printf '%s' "$podman_ns" | sed 's/[][*?\\]/\\&/g')
    while read -r link; do
      pid=${link#/proc/}
      pid=${pid%%/*}
      pids+=("$pid")
      while read -r child; do pids+=("$child"); done < <(ps -o pid= --ppid "$pid" 2>/dev/null || true)
    done < <(find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/mnt' -lname "$pattern" 2>/dev/null || true)
    if [ ${#pids[@]} -gt 0 ]; then
      kill -9 "${pids[@]}" 2>/dev/null || true
      for _ in $(seq 1 50); do
        # Until each is gone or a zombie (init reaps them in its own time).
        ps -o stat= -p "$(IFS=,; echo "${pids[*]}")" 2>/dev/null | grep -qv '^Z' || break
        sleep 0.1
      done
    fi
    # And the cgroups (cgroupfs) that only Podman's own cleanup removes.
    local container id cgroup
    for container in "$work"/podman/root/overlay-containers/*/; do
      [ -d "$container" ] || continue
      id=$(basename "$container")
      for cgroup in /sys/fs/cgroup/libpod_parent/libpod-"$id" /sys/fs/cgroup/*/libpod_parent/libpod-"$id"; do
        if [ -d "$cgroup" ]; then rmdir "$cgroup" 2>/dev/null || true; fi
      done
    done
  fi
  started_podman=""
}

# PgBouncer in front of the throwaway cluster. It refuses to run as root: it
# runs as postgres, with its files in a directory that user owns.
start_pgbouncer() {
  unset RTINSPECT_TEST_PGBOUNCER_URL
  command -v pgbouncer >/dev/null || return 0
  local dir="$work/pgbouncer"
  local port=$(( 40000 + RANDOM % 20000 ))
  mkdir -p "$dir"
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  {
    printf '[databases]\n* = host=%s port=%s\n\n[pgbouncer]\n' "$work/pg" "$pg_port"
    printf '%s\n' \
      "listen_addr = 127.0.0.1" "listen_port = $port" "unix_socket_dir = $dir" \
      "auth_type = trust" "auth_file = $dir/userlist.txt" "admin_users = postgres" \
      "pidfile = $dir/pgbouncer.pid" "logfile = $dir/pgbouncer.log" \
      "pool_mode = transaction" "default_pool_size = 2" "${PGBOUNCER_SETTINGS:-}"
  } >"$dir/pgbouncer.ini"
  chown -R postgres "$dir"
  log "starting a throwaway PgBouncer on 127.0.0.1:$port (transaction pooling)"
  if ! runuser -u postgres -- pgbouncer -d "$dir/pgbouncer.ini" >"$dir/start.out" 2>&1; then
    log "PgBouncer did not start:"
    cat "$dir/start.out" "$dir/pgbouncer.log" >&2 2>/dev/null || true
    return 0
  fi
  started_pgbouncer=1
  local url="host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable"
  for _ in $(seq 1 50); do
    psql -qAt "$url" -c 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  export RTINSPECT_TEST_PGBOUNCER_URL="$url"
}
