#!/usr/bin/env python3
"""The measuring half of tests/bench/events.sh (which owns the daemons, the
build and the cleanup): detection latency on a real dockerd, dockerd's
steady-state CPU with and without the events stream, rtinspect's footprint
at 1,000 records on the fake engine, and the Markdown table.

Every process it starts is listed in the pid file given with --pids (the
shell's trap ends what is left there) and ended here on the way out, SIGTERM
included. Every container it starts carries the run's label and is removed
on the way out.

  latency    induced failures, events on or off: JSON of latencies, of the
             stages rtinspect logs, and of dockerd's own inspect (the floor)
  cost       dockerd + containerd CPU per hour, 100 real containers
  footprint  rtinspect RSS and threads at 1,000 records, on and off at once
  table      the Markdown table from the JSON files
"""

import argparse
import concurrent.futures
import datetime
import errno
import http.client
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

# The image tests/services.sh imports for the benchmarks ($bench_image).
IMAGE = "rtinspect-bench/busybox:1"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
# The tick log line ends with the tick's duration in Rust's Debug format.
TICK_TOOK = re.compile(r", ([0-9.]+)(ns|µs|ms|s)$")
DURATION_UNIT_MS = {"ns": 1e-6, "µs": 1e-3, "ms": 1.0, "s": 1000.0}
KINDS = ("kill", "exit", "health", "boot")
KIND_NAMES = {
    "kill": "`docker kill`",
    "exit": "exits by itself (`exit 3`)",
    "health": "healthcheck turns unhealthy",
    "boot": "dies while booting (0.5–3 s)",
}
# Which Docker event marks each kind of failure.
FAILURE_ACTION = {"kill": "die", "exit": "die", "health": "health_status: unhealthy",
                  "boot": "die"}
# A booting container lives 0.5–3 s; it is started only when it will have
# died this long before the next tick lists the records (the CLI's create and
# start, with room to spare), so no tick sees it alive.
BOOT_DELAYS_S = (0.5, 3.0)
BOOT_MARGIN_S = 2.0
# ... and not before this long after the last tick ended.
BOOT_AFTER_TICK_S = 0.3
# rtinspect's text log line: `TS LEVEL target: msg key=value …`, values with
# spaces, quotes or `=` quoted with Rust's escaping (src/logging.rs).
TEXT_LINE = re.compile(r"^(?:<\d>)?(?:(\d{4}-\d\d-\d\dT\S+Z) )?(TRACE|DEBUG|INFO|WARN|ERROR) +(\S+): (.*)$")
TEXT_FIELDS = re.compile(r'^(.*?)((?: [A-Za-z_][A-Za-z0-9_]*=(?:"(?:[^"\\]|\\.)*"|[^\s"=]+))*)$')
TEXT_FIELD = re.compile(r' ([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"=]+)')
TICK_RECORDS = re.compile(r"^tick: (\d+) records")
# The stages of a delivered event that a Docker event prompted, in ms from
# the event's time, from rtinspect's debug line `detected … read_ms=…
# answered_ms=… accepted_ms=…` (target rtinspect::publish::publisher).
STAGES = ("read_ms", "answered_ms", "accepted_ms")


def log(msg):
    print(f"tests/bench/events.py: {msg}", file=sys.stderr, flush=True)


class Children:
    """Processes started here, mirrored in a pid file for the shell's trap."""

    def __init__(self, path):
        self.path = path
        self.procs = []
        self.lock = threading.Lock()

    def start(self, argv, **kw):
        with self.lock:
            p = subprocess.Popen(argv, **kw)
            self.procs.append(p)
            self._write()
            return p

    def _write(self):
        live = [p.pid for p in self.procs if p.poll() is None]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(f"{pid}\n" for pid in live))
        os.replace(tmp, self.path)

    def stop(self, p, grace=15):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        with self.lock:
            self._write()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def docker(host, *args, timeout=120):
    r = subprocess.run(
        ["docker", "-H", host, *args], capture_output=True, text=True, timeout=timeout
    )
    if r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:2])}: {r.stderr.strip()}")
    return r.stdout.strip()


def remove_containers(host, ids):
    for i in range(0, len(ids), 100):
        try:
            docker(host, "rm", "-f", *ids[i : i + 100], timeout=300)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"removing containers: {e}")


def run_containers(host, specs, workers=4):
    """Starts containers from (key, docker run arguments) pairs, a few at a
    time; returns {key: full id}. Ids are collected as they come, so that a
    failure part-way still leaves them for removal."""
    ids = {}

    def one(spec):
        key, argv = spec
        ids[key] = docker(host, "run", "-d", "--network", "none", *argv)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(one, s) for s in specs]
        errors = [f.exception() for f in futures if f.exception()]
    if errors:
        raise RuntimeError(f"{len(errors)} containers did not start: {errors[0]}")
    return ids


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    kib = lambda k: int(fields[k].split()[0])  # noqa: E731
    return {"rss_kib": kib("VmRSS"), "hwm_kib": kib("VmHWM"), "threads": int(fields["Threads"])}


def thread_names(pid):
    names = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names.append(f.read().strip())
    return names


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Timeout(RuntimeError):
    pass


def wait_for(what, cond, timeout, every=0.1):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def log_lines(path):
    """rtinspect's JSON log lines (`--log-format json`); other lines are skipped."""
    with open(path, errors="replace") as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def warnings_logged(path):
    return sum(1 for e in log_lines(path) if e.get("level") in ("warn", "error"))


def rfc3339_ns(text):
    """An RFC 3339 UTC time with microseconds as integer ns since the epoch
    (exact: a float would round at this magnitude)."""
    d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH
    return ((d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds) * 1000


def ticks_logged(path, records):
    """How many ticks over `records` records the log file shows."""
    try:
        with open(path, errors="replace") as f:
            return len(re.findall(rf"tick: {records} records", f.read()))
    except FileNotFoundError:
        return 0


class LineReader:
    """Reads a pipe in a thread and stamps each line with the wall clock at
    the moment its bytes were read (time.time_ns, the clock dockerd's
    timeNano comes from)."""

    def __init__(self, pipe, on_line):
        self.fd = pipe.fileno()
        self.on_line = on_line
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        pending = b""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            now = time.time_ns()
            if not chunk:
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    self.on_line(line, now)


def start_rtinspect(children, rt, args, stderr_path, env_extra=None, stdout=subprocess.PIPE):
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    env.update(env_extra or {})
    err = open(stderr_path, "wb")
    try:
        # BENCH_RTINSPECT_ARGS: more options for every run (e.g. `--report
        # both`, so that incidents, and their log tails, are made beside facts).
        extra = os.environ.get("BENCH_RTINSPECT_ARGS", "").split()
        return children.start([rt, "run", *args, *extra], stdout=stdout, stderr=err, env=env)
    finally:
        err.close()


# ---------------------------------------------------------------- latency


def text_log_entry(line):
    """One line of rtinspect's text log as {"ts", "level", "target", "msg",
    field: value, …}; None for a line of another shape."""
    m = TEXT_LINE.match(line.rstrip("\r\n"))
    if not m:
        return None
    ts, level, target, rest = m.groups()
    msg, tail = TEXT_FIELDS.match(rest).groups()
    e = {"ts": ts, "level": level.lower(), "target": target, "msg": msg}
    for k, v in TEXT_FIELD.findall(tail):
        if v.startswith('"'):
            try:
                v = json.loads(v)
            except ValueError:
                v = v[1:-1]
        e.setdefault(k, v)
    return e


class TextLog:
    """Follows rtinspect's text log file as it grows: every entry, and its
    ticks as (start, end, records) in ns since the epoch (the tick line is
    logged at the tick's end, with its duration)."""

    def __init__(self, path):
        self.path = path
        self.entries, self.ticks = [], []
        self.cond = threading.Condition()
        self.offset, self.pending = 0, b""
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            self.poll()
            self.stopped.wait(0.05)

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        with self.cond:
            self.offset += len(chunk)
            self.pending += chunk
            *lines, self.pending = self.pending.split(b"\n")
            for raw in lines:
                e = text_log_entry(raw.decode(errors="replace"))
                if e is None:
                    continue
                self.entries.append(e)
                took = TICK_TOOK.search(e["msg"])
                n = TICK_RECORDS.match(e["msg"])
                if took and n and e["ts"]:
                    end = rfc3339_ns(e["ts"])
                    dur = float(took.group(1)) * DURATION_UNIT_MS[took.group(2)] * 1e6
                    self.ticks.append((end - int(dur), end, int(n.group(1))))
            if lines:
                self.cond.notify_all()

    def last_tick(self):
        with self.cond:
            return self.ticks[-1] if self.ticks else None

    def wait_ticks(self, count, timeout):
        """Until `count` ticks have been logged; whether they were."""
        with self.cond:
            return self.cond.wait_for(lambda: len(self.ticks) >= count, timeout)

    def warnings(self):
        with self.cond:
            return sum(1 for e in self.entries if e["level"] in ("warn", "error"))

    def stop(self):
        self.stopped.set()
        self.thread.join()
        self.poll()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Floor:
    """dockerd's own delay to answer the inspect of a container whose failure
    event was just read: for each failure, one inspect over the Unix socket
    at once, on a fresh connection, in a thread of its own (the events reader
    never waits). One more client of dockerd, one request per failure."""

    def __init__(self, host):
        self.path = host[len("unix://"):] if host.startswith("unix://") else None
        self.api, self.results, self.threads = None, {}, []
        self.lock = threading.Lock()
        if self.path is None:
            log(f"{host} is not a Unix socket: no floor probe")
            return
        conn = UnixHTTPConnection(self.path)
        try:
            conn.request("GET", "/_ping")
            r = conn.getresponse()
            r.read()
            self.api = r.getheader("Api-Version")
        finally:
            conn.close()
        if not self.api:
            log("dockerd's /_ping has no Api-Version: no floor probe")

    def probe(self, cid, action, at_ns):
        if self.api is None:
            return
        t = threading.Thread(target=self._one, args=(cid, action, at_ns), daemon=True)
        with self.lock:
            self.threads.append(t)
        t.start()

    def _one(self, cid, action, at_ns):
        conn = UnixHTTPConnection(self.path)
        try:
            conn.connect()
            sent = time.time_ns()
            conn.request("GET", f"/v{self.api}/containers/{cid}/json")
            r = conn.getresponse()
            body = r.read()
            answered = time.time_ns()
        except OSError as e:
            log(f"floor probe of {cid[:12]}: {e}")
            return
        finally:
            conn.close()
        shown = None
        try:
            state = json.loads(body).get("State", {})
            shown = (state.get("Health") or {}).get("Status") if action.startswith(
                "health_status") else state.get("Status")
        except (ValueError, AttributeError):
            pass
        with self.lock:
            self.results[(cid, action)] = {"at": at_ns, "sent": sent, "answered": answered,
                                           "http": r.status, "shown": shown}

    def finish(self, timeout=15):
        deadline = time.monotonic() + timeout
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            return dict(self.results)


def ms_value(text):
    """A `*_ms` field: a number of ms, or a Rust Duration (`3.1ms`, `412µs`)."""
    try:
        return float(text)
    except ValueError:
        m = re.fullmatch(r"([0-9.]+)(ns|µs|us|ms|s)", text)
        if m:
            return float(m.group(1)) * {**DURATION_UNIT_MS, "us": 1e-3}[m.group(2)]
        return None


def boot_delays(n):
    """n lifetimes spread evenly over BOOT_DELAYS_S, in random order."""
    lo, hi = BOOT_DELAYS_S
    d = [lo + (hi - lo) * i / max(1, n - 1) for i in range(n)]
    random.shuffle(d)
    return d


def latency(a, children):
    host, mode, n = a.docker_host, a.events, a.failures
    label = a.label
    interval_s = parse_seconds(a.interval)
    os.makedirs(a.fifo_dir, exist_ok=True)
    result = {"mode": mode, "failures_per_kind": n, "window_s": a.window,
              "health_interval_s": a.health_interval, "load_at_start": os.getloadavg()}

    # The failure events, as dockerd stamps them, and when each container
    # was created (a booting one must not exist yet when a tick lists).
    failures = {}  # (container id, action) -> timeNano
    created = {}  # container id -> timeNano
    ev_lock = threading.Lock()
    floor = Floor(host)

    def on_event(line, _now):
        try:
            e = json.loads(line)
        except ValueError:
            return
        cid, action = e.get("Actor", {}).get("ID", ""), e.get("Action", "")
        at = e.get("timeNano", 0)
        if action == "die" or action == "health_status: unhealthy":
            with ev_lock:
                first = (cid, action) not in failures
                failures.setdefault((cid, action), at)
            if first:
                floor.probe(cid, action, at)
        elif action == "create":
            with ev_lock:
                created.setdefault(cid, at)

    events = children.start(
        ["docker", "-H", host, "events", "--format", "{{json .}}",
         "--filter", "type=container", "--filter", f"label={label}",
         "--filter", "event=create", "--filter", "event=die", "--filter", "event=health_status"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    LineReader(events.stdout, on_event)

    # The containers: kill ones sleep; the others wait on a FIFO for their
    # delay, so that the failures start only after rtinspect's first tick.
    # Booting ones are started later, between two ticks.
    specs, kind_of = [], {}
    for i in range(n):
        for kind in ("kill", "exit", "health"):
            key = f"{kind}-{i}"
            kind_of[key] = kind
            argv = ["--label", f"{label}=g-{key}"]
            if kind == "kill":
                argv += [IMAGE, "sleep", "100000"]
            else:
                os.mkfifo(os.path.join(a.fifo_dir, key))
                argv += ["-v", f"{a.fifo_dir}:/f:ro"]
                if kind == "exit":
                    argv += [IMAGE, "sh", "-c", f"read d < /f/{key}; sleep $d; exit 3"]
                else:
                    # The image has no /tmp: the flag file lives at the root.
                    argv += ["--health-cmd", "test ! -e /sick",
                             "--health-interval", f"{a.health_interval}s",
                             "--health-retries", "1", IMAGE, "sh", "-c",
                             f"read d < /f/{key}; sleep $d; touch /sick; sleep 100000"]
            specs.append((key, argv))
    ids, ids_lock = {}, threading.Lock()
    stop = threading.Event()
    booters = []
    rtlog = None
    try:
        started = time.monotonic()
        log(f"events {mode}: starting {len(specs)} containers")
        ids.update(run_containers(host, specs))
        result["containers_started"] = len(specs)
        result["containers_started_in_s"] = round(time.monotonic() - started, 1)

        arrivals = {}  # container id -> first envelope's arrival (ns)
        lines = [0]

        def on_envelope(line, now):
            lines[0] += 1
            try:
                cid = json.loads(line).get("container_id", "")
            except ValueError:
                return
            arrivals.setdefault(cid, now)

        err_path = os.path.join(a.fifo_dir, f"rtinspect-{mode}.log")
        # Debug logs as text: the tick lines place the ticks, and with
        # events on the publisher's `detected` lines split the latency.
        rt = start_rtinspect(children, a.rtinspect,
                             ["--docker-host", host, "--label", label, "--interval", a.interval,
                              "--sink", "stdout", "--events", mode, "--log-format", "text"],
                             err_path, {"RUST_LOG": "rtinspect=debug"})
        LineReader(rt.stdout, on_envelope)
        rtlog = TextLog(err_path)
        if not rtlog.wait_ticks(1, 60):
            raise Timeout(f"timed out after 60 s waiting for rtinspect's first tick; see {err_path}")
        if arrivals:
            raise RuntimeError(f"rtinspect reported {len(arrivals)} containers before any failure")

        # Go: every failure gets a delay drawn uniformly over the window.
        go = time.time()
        result["load_at_go"] = os.getloadavg()
        delay = {key: random.uniform(0, a.window) for key in ids}
        for key, cid in ids.items():
            if kind_of[key] != "kill":
                release(os.path.join(a.fifo_dir, key), delay[key])
        kills = sorted((delay[k], ids[k]) for k in ids if kind_of[k] == "kill")
        killers = []

        def kill_on_time():
            for d, cid in kills:
                if stop.wait(max(0.0, go + d - time.time())):
                    break
                killers.append(subprocess.Popen(["docker", "-H", host, "kill", cid],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for k in killers:
                k.wait()

        killer = threading.Thread(target=kill_on_time, daemon=True)
        killer.start()

        # Booting containers: each at a moment drawn over the window, moved
        # to a random moment of the next tick's gap when it could still be
        # alive when the next tick lists the records.
        boot_failed = []

        def boot(key, at, life):
            if not boot_one(key, at, life):
                boot_failed.append(key)

        def boot_one(key, at, life):
            """Starts one booting container; whether it was started."""
            if stop.wait(max(0.0, go + at - time.time())):
                return False
            for _ in range(3):
                last = rtlog.last_tick()
                now = time.time_ns()
                next_list = last[0] + int(interval_s * 1e9)
                if (now >= last[1] + BOOT_AFTER_TICK_S * 1e9
                        and now + (life + BOOT_MARGIN_S) * 1e9 <= next_list):
                    break
                # Wait for the next tick's line, then a moment of its gap.
                seen = len(rtlog.ticks)
                deadline = time.monotonic() + interval_s + 30
                while len(rtlog.ticks) <= seen and time.monotonic() < deadline:
                    if stop.wait(0.05):
                        return False
                last = rtlog.last_tick()
                gap = interval_s - (last[1] - last[0]) / 1e9 - BOOT_AFTER_TICK_S - life - BOOT_MARGIN_S
                if stop.wait(max(0.0, last[1] / 1e9 + BOOT_AFTER_TICK_S
                                 + random.uniform(0, max(0.0, gap)) - time.time())):
                    return False
            try:
                cid = docker(host, "run", "-d", "--network", "none", "--label", f"{label}=g-{key}",
                             IMAGE, "sh", "-c", f"sleep {life:.3f}; exit 3", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"events {mode}: {key} did not start: {e}")
                return False
            with ids_lock:
                ids[key] = cid
            return True

        lives = boot_delays(n)
        for i in range(n):
            key = f"boot-{i}"
            kind_of[key] = "boot"
            t = threading.Thread(target=boot, args=(key, random.uniform(0, a.window), lives[i]),
                                 daemon=True)
            booters.append(t)
            t.start()

        def done():
            if rt.poll() is not None:
                raise RuntimeError(f"rtinspect exited with {rt.returncode}; see {err_path}")
            if any(t.is_alive() for t in booters):
                return False
            with ev_lock:
                seen = {cid for (cid, _a) in failures}
            with ids_lock:
                return all(cid in seen and cid in arrivals for cid in ids.values())

        # A booting container may wait a tick to start, and with events off
        # be seen a tick after it died.
        budget = a.window + a.health_interval + 2 * interval_s + 30
        try:
            wait_for("every failure reported", done, budget, every=0.25)
        except Timeout as e:
            log(f"events {mode}: {e}; counting what arrived")
        stop.set()
        for t in booters:
            t.join(90)
        killer.join(timeout=30)
        result["load_at_end"] = os.getloadavg()
        result["envelope_lines"] = lines[0]
        rtlog.stop()
        floors = floor.finish()
        result["floor_probe"] = {"api": floor.api, "probes": len(floors),
                                 "not_200": sum(1 for f in floors.values() if f["http"] != 200)}

        # The publisher's `detected` lines, by container and action.
        detected = {}
        for e in rtlog.entries:
            if not e["msg"].startswith("detected"):
                continue
            stages = {s: ms_value(e[s]) for s in STAGES if ms_value(e.get(s, "")) is not None}
            action = e.get("action", "")
            cid = e.get("container_id", "")
            game = e.get("game_id", "")
            detected.setdefault((cid, action), stages)
            detected.setdefault(("game", game, action), stages)
        result["detected_lines"] = sum(1 for e in rtlog.entries if e["msg"].startswith("detected"))

        def detected_for(key, cid, kind):
            """The first `detected` line for this failure: its container id
            or game id, and the failure's action (a health event may be
            logged bare, as `health_status`)."""
            for action in (FAILURE_ACTION[kind], FAILURE_ACTION[kind].split(":")[0]):
                for k in ((cid, action), ("game", f"g-{key}", action)):
                    if k in detected:
                        return detected[k]
            return None

        # Ticks after go, for scale; and which booting containers a tick
        # could have listed before they died.
        ticks = [t for t in rtlog.ticks if t[1] >= go * 1e9]
        result["tick_ms"] = [(t[1] - t[0]) / 1e6 for t in ticks]
        result["tick_records"] = sorted({t[2] for t in ticks})
        by_kind = {k: {"induced": 0, "events": 0, "matched": 0, "early": 0, "listed_alive": 0,
                       "latencies_ms": [], "floor_ms": [], "floor_wait_ms": [],
                       "floor_sent_ms": [], "floor_not_shown": 0, "over_floor_ms": [],
                       "detected": 0, **{s: [] for s in STAGES}}
                   for k in KINDS}
        by_kind["boot"]["not_started"] = len(boot_failed)
        by_kind["boot"]["induced"] += len(boot_failed)
        with ids_lock:
            final_ids = dict(ids)
        for key, cid in final_ids.items():
            kind = kind_of[key]
            s = by_kind[kind]
            s["induced"] += 1
            action = FAILURE_ACTION[kind]
            with ev_lock:
                at = failures.get((cid, action))
                made = created.get(cid)
            if at is None:
                continue
            if kind == "boot" and (made is None or any(t[0] < at and t[1] > made for t in ticks)):
                # Listed alive (or not known not to be): not a booting death.
                s["listed_alive"] += 1
                continue
            s["events"] += 1
            f = floors.get((cid, action))
            if f is not None:
                s["floor_ms"].append((f["answered"] - at) / 1e6)
                s["floor_wait_ms"].append((f["answered"] - f["sent"]) / 1e6)
                s["floor_sent_ms"].append((f["sent"] - at) / 1e6)
                wanted = "unhealthy" if kind == "health" else "exited"
                if f["shown"] != wanted:
                    s["floor_not_shown"] += 1
            if cid not in arrivals:
                continue
            s["matched"] += 1
            ms = (arrivals[cid] - at) / 1e6
            if ms < 0:
                s["early"] += 1
            s["latencies_ms"].append(ms)
            if f is not None:
                s["over_floor_ms"].append(ms - (f["answered"] - at) / 1e6)
            d = detected_for(key, cid, kind)
            if d is not None:
                s["detected"] += 1
                for stage, v in d.items():
                    s[stage].append(v)
        result["kinds"] = by_kind
        result["rtinspect_warnings"] = rtlog.warnings()
        children.stop(rt)
    finally:
        stop.set()
        for t in booters:
            t.join(90)
        if rtlog is not None:
            rtlog.stop()
        children.stop(events)
        with ids_lock:
            remove_containers(host, list(ids.values()))
    write_json(a.out, result)


def release(fifo, delay):
    """Hands a container its delay through its FIFO (the container is
    blocked opening it for reading; a non-blocking open fails with ENXIO
    until it is)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline:
                raise RuntimeError(f"{fifo}: no container reads it ({e})") from e
            time.sleep(0.05)
    try:
        os.write(fd, f"{delay:.3f}\n".encode())
    finally:
        os.close(fd)


def parse_seconds(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not m:
        raise ValueError(f"an interval: {text}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


# ---------------------------------------------------------------- cost


def cost(a, children):
    host, n, label = a.docker_host, a.containers, a.label
    daemons = [int(p) for p in a.daemon_pids.split(",") if p]
    hz = os.sysconf("SC_CLK_TCK")
    interval_s = parse_seconds(a.interval)
    result = {"containers": n, "window_s": a.seconds, "interval": a.interval,
              "daemon_pids": daemons, "windows": []}
    ids = {}
    try:
        log(f"cost: starting {n} containers")
        ids = run_containers(host, [(i, ["--label", f"{label}=g-{i}", IMAGE, "sleep", "100000"])
                                    for i in range(n)])
        time.sleep(15)  # let the starts settle out of the first window
        for mode in (None, "off", "on"):
            name = "no rtinspect" if mode is None else f"events {mode}"
            log(f"cost: {name}, {a.seconds} s")
            rt = None
            if mode is not None:
                err_path = os.path.join(a.work, f"cost-{mode}.log")
                rt = start_rtinspect(children, a.rtinspect,
                                     ["--docker-host", host, "--label", label,
                                      "--interval", a.interval, "--events", mode,
                                      "--log-format", "json"],
                                     err_path, {"RUST_LOG": "rtinspect=debug"},
                                     stdout=subprocess.DEVNULL)
                wait_for("rtinspect's first tick", lambda: ticks_logged(err_path, n) >= 1, 60)
                # Start half an interval after a tick: the window holds
                # whole ticks only.
                time.sleep(interval_s / 2)
                ticks_before = ticks_logged(err_path, n)
            d0 = sum(cpu_ticks(p) for p in daemons)
            r0 = cpu_ticks(rt.pid) if rt else 0
            t0 = time.monotonic()
            time.sleep(a.seconds)
            elapsed = time.monotonic() - t0
            d1 = sum(cpu_ticks(p) for p in daemons)
            w = {"name": name, "elapsed_s": elapsed,
                 "dockerd_cpu_s": (d1 - d0) / hz,
                 "dockerd_cpu_s_per_hour": (d1 - d0) / hz / elapsed * 3600,
                 "load": os.getloadavg()}
            if rt:
                w["rtinspect_cpu_s_per_hour"] = (cpu_ticks(rt.pid) - r0) / hz / elapsed * 3600
                w["ticks"] = ticks_logged(err_path, n) - ticks_before
                w.update(proc_status(rt.pid))
                w["thread_names"] = thread_names(rt.pid)
                children.stop(rt)
            result["windows"].append(w)
    finally:
        remove_containers(host, list(ids.values()))
    write_json(a.out, result)


# ---------------------------------------------------------------- footprint


def footprint(a, children):
    """Every build, events on and off, side by side on one fake engine."""
    builds = [b.split("=", 1) for b in a.build]
    engine = children.start([a.engine, a.socket, str(a.records)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    result = {"records": a.records, "seconds": a.seconds, "interval": a.interval, "runs": []}
    try:
        if engine.stdout.readline().strip() != b"ready":
            raise RuntimeError("the fake engine did not start")
        runs = []
        for n, (build, path) in enumerate(builds):
            for mode in ("off", "on"):
                err_path = os.path.join(a.work, f"footprint-{n}-{mode}.log")
                p = start_rtinspect(children, path,
                                    ["--docker-host", f"unix://{a.socket}",
                                     "--interval", a.interval, "--events", mode,
                                     "--log-format", "json"],
                                    err_path, {"RUST_LOG": "rtinspect=debug"},
                                    stdout=subprocess.DEVNULL)
                runs.append({"build": build, "mode": mode, "proc": p, "log": err_path,
                             "peak_sampled_rss_kib": 0})
        end = time.monotonic() + a.seconds
        while time.monotonic() < end:
            for r in runs:
                if r["proc"].poll() is not None:
                    raise RuntimeError(f"rtinspect ({r['build']}, events {r['mode']}) exited "
                                       f"with {r['proc'].returncode}; see {r['log']}")
                r["peak_sampled_rss_kib"] = max(r["peak_sampled_rss_kib"],
                                                proc_status(r["proc"].pid)["rss_kib"])
            time.sleep(1)
        for r in runs:
            p = r.pop("proc")
            r.update(proc_status(p.pid))
            r["thread_names"] = thread_names(p.pid)
            r["ticks"] = ticks_logged(r["log"], a.records)
            r["warnings"] = warnings_logged(r["log"])
            result["runs"].append(r)
            children.stop(p)
    finally:
        children.stop_all()
    write_json(a.out, result)


# ---------------------------------------------------------------- table


def percentile(sorted_values, p):
    """Nearest rank: the smallest value with at least p % of the samples at
    or below it."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def fmt_ms(ms):
    if ms is None:
        return "–"
    if abs(ms) >= 1000:
        return f"{ms / 1000:.2f} s"
    if abs(ms) >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def p50_p99(values):
    """`p50 / p99` of some ms values, or n/a when there are none."""
    v = sorted(values)
    if not v:
        return "n/a"
    return f"{fmt_ms(percentile(v, 50))} / {fmt_ms(percentile(v, 99))}"


def mib(kib):
    return f"{kib / 1024:.2f} MiB"


def table(a):
    lines = []
    out = lines.append
    machine = json.load(open(a.machine))
    lat = [json.load(open(p)) for p in a.latency]
    out("## rtinspect: Docker events beside the poll")
    out("")
    out(f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['mem']} RAM, "
        f"kernel {machine['kernel']}, dockerd {machine['dockerd']} ({machine['daemon']}). "
        f"Load average (1/5/15 min) {machine['load_start']} at the start, "
        f"{machine['load_end']} at the end.")
    out(f"Command: `{machine['command']}` ({machine['duration']}).")
    out("")
    if lat:
        l0 = lat[0]
        out(f"### Detection latency: the failure's Docker event (`timeNano`) → its envelope "
            f"line read on rtinspect's stdout")
        out("")
        out(f"`rtinspect run --interval {machine['interval']} --label … --sink stdout`, "
            f"{l0['failures_per_kind']} failures per kind and mode at moments drawn uniformly "
            f"over {l0['window_s']} s after the first tick; healthchecks every "
            f"{l0['health_interval_s']} s. A booting container is started between two ticks "
            f"(none lists it alive) and exits {BOOT_DELAYS_S[0]}–{BOOT_DELAYS_S[1]} s after it "
            "starts, lifetimes spread evenly. Percentiles by nearest rank: with fewer than 100 "
            "samples, p99 is the maximum.")
        out("")
        out("| failure | events | matched | p50 | p90 | p99 | max |")
        out("|---|---|---|---|---|---|---|")
        problems, early, alive = [], [], []
        for kind in KINDS:
            for r in lat:
                s = r["kinds"].get(kind)
                if s is None:
                    continue
                v = sorted(s["latencies_ms"])
                counted = s["induced"] - s.get("listed_alive", 0)
                matched = f"{s['matched']}/{counted}"
                if s["matched"] != counted:
                    matched += " ⚠"
                    problems.append(f"{KIND_NAMES[kind]}, events {r['mode']}: "
                                    f"{counted} induced"
                                    + (f" ({s['not_started']} never started)"
                                       if s.get("not_started") else "")
                                    + f", {s['events']} failure events seen, "
                                    f"{s['matched']} matched to an envelope")
                if s["early"]:
                    early.append(f"{KIND_NAMES[kind]}, events {r['mode']}: {s['early']}")
                if s.get("listed_alive"):
                    alive.append(f"events {r['mode']}: {s['listed_alive']}")
                out(f"| {KIND_NAMES[kind]} | {r['mode']} | {matched} | {fmt_ms(percentile(v, 50))} | "
                    f"{fmt_ms(percentile(v, 90))} | {fmt_ms(percentile(v, 99))} | "
                    f"{fmt_ms(v[-1] if v else None)} |")
        out("")
        on = [r for r in lat if r["mode"] == "on"]
        if on:
            kinds = [(k, r["kinds"][k]) for r in on for k in KINDS if k in r["kinds"]]
            p99s = [(percentile(sorted(s["latencies_ms"]), 99), k) for k, s in kinds]
            worst, worst_kind = max(((p or 0), k) for p, k in p99s)
            missed = sum(s["induced"] - s.get("listed_alive", 0) - s["matched"] for _k, s in kinds)
            verdict = "met" if worst <= 100 and not missed else "NOT met"
            out(f"Target p99 ≤ 100 ms with events on: {verdict} (worst p99 {fmt_ms(worst)}, "
                f"{KIND_NAMES[worst_kind]}"
                + (f"; {missed} failures never reported count as misses" if missed else "") + ").")
            gaps = []
            for k, s in kinds:
                p, f = percentile(sorted(s["latencies_ms"]), 99), percentile(sorted(s["floor_ms"]), 99)
                if p is not None and f is not None:
                    gaps.append((p - f, k))
            if gaps:
                gap, gap_kind = max(gaps)
                verdict = "met" if gap <= 25 and len(gaps) == len(kinds) and not missed else "NOT met"
                out(f"Target every kind's p99 within 25 ms of dockerd's own inspect (its p99, "
                    f"from the same event): {verdict} (largest gap {fmt_ms(gap)}, "
                    f"{KIND_NAMES[gap_kind]}"
                    + (f"; {len(kinds) - len(gaps)} kinds without both" if len(gaps) < len(kinds)
                       else "") + ").")
            else:
                out("Target every kind's p99 within 25 ms of dockerd's own inspect: n/a "
                    "(no floor probe answered).")
        out("Every failure was matched to its envelope." if not problems
            else "NOT every failure matched (percentiles are of the matched ones): "
            + "; ".join(problems) + ".")
        if alive:
            out("Booting containers a tick could have listed alive (a resync tick, or a start "
                "that ran late), left out: " + "; ".join(alive) + ".")
        if early:
            out("Envelopes read before the failure's Docker event (negative latencies, kept in "
                "the percentiles): " + "; ".join(early) + ".")
        for r in lat:
            out(f"Events {r['mode']}: {r['containers_started_in_s']} s to start "
                f"{r.get('containers_started', 3 * r['failures_per_kind'])} containers before "
                f"the first tick; load average at go "
                f"{fmt_load(r['load_at_go'])}, at the end {fmt_load(r['load_at_end'])}; "
                f"{r['envelope_lines']} envelope lines; rtinspect warnings: {r['rtinspect_warnings']}.")
        out("")
        for r in on:
            fp = r.get("floor_probe", {})
            out("Where the time goes with events on, in ms from the failure's Docker event, "
                "p50 / p99 (nearest rank) of each stage. The first three are from rtinspect's "
                "debug line `detected … read_ms= answered_ms= accepted_ms=` (target "
                "`rtinspect::publish::publisher`, one per delivered event a Docker event prompted): the "
                "inspector takes the nudge, dockerd answers its inspect, the sink accepts the "
                "envelope. *dockerd's inspect* is the floor: on reading the failure's event from "
                "`docker events`, the benchmark itself inspects the container once over the Unix "
                f"socket (`GET /v{fp.get('api') or '…'}/containers/ID/json`, a fresh connection): "
                "from the event to dockerd's answer, and in brackets the request alone.")
            out("")
            out("| failure | `detected` lines | nudge read | inspect answered | sink accepted | "
                "envelope read | dockerd's inspect (request alone) | envelope − dockerd's, paired |")
            out("|---|---|---|---|---|---|---|---|")
            for kind in KINDS:
                s = r["kinds"].get(kind)
                if s is None:
                    continue
                out(f"| {KIND_NAMES[kind]} | {s.get('detected', 0)}/{s['matched']} | "
                    + " | ".join(p50_p99(s.get(st, [])) for st in STAGES)
                    + f" | {p50_p99(s['latencies_ms'])} | {p50_p99(s['floor_ms'])} "
                    f"({p50_p99(s['floor_wait_ms'])}) | {p50_p99(s['over_floor_ms'])} |")
            out("")
            notes = []
            if not r.get("detected_lines"):
                notes.append("rtinspect logged no `detected` line: n/a in its three columns")
            sent = sorted(v for k in KINDS for v in r["kinds"].get(k, {}).get("floor_sent_ms", []))
            if sent:
                notes.append(f"the floor probe sent its request {fmt_ms(percentile(sent, 50))} "
                             f"(p50), {fmt_ms(percentile(sent, 99))} (p99) after the event's "
                             "time (the `docker events` CLI relays the event, a thread starts)")
            shown = sum(r["kinds"].get(k, {}).get("floor_not_shown", 0) for k in KINDS)
            if shown:
                notes.append(f"{shown} of dockerd's answers to it did not show the failure yet")
            if fp.get("not_200"):
                notes.append(f"{fp['not_200']} probes were not answered 200")
            notes.append("the probe is one more client of dockerd, one inspect per failure, in "
                         "both modes")
            out("Notes: " + "; ".join(notes) + ".")
            out("")
            t = sorted(r.get("tick_ms", []))
            if t:
                recs = r.get("tick_records") or [3 * r["failures_per_kind"]]
                span = f"{recs[0]}" if recs[0] == recs[-1] else f"{recs[0]}–{recs[-1]}"
                out(f"A nudge that arrives during a tick is taken between its records, so a "
                    f"tick delays it by one inspect at most. For scale: {len(t)} "
                    f"tick{'s' if len(t) != 1 else ''} over {span} records after go took "
                    f"{fmt_ms(percentile(t, 50))} (median), {fmt_ms(t[-1])} (longest).")
                out("")
    if a.cost:
        c = json.load(open(a.cost))
        out(f"### Steady state: {c['containers']} real containers, `--interval {c['interval']}`, "
            f"{c['window_s']} s windows, CPU extrapolated to an hour")
        out("")
        out("| rtinspect | dockerd + containerd CPU | over no rtinspect | rtinspect CPU | "
            "ticks in window | rtinspect VmRSS | VmHWM | threads |")
        out("|---|---|---|---|---|---|---|---|")
        idle = c["windows"][0]["dockerd_cpu_s_per_hour"]
        for w in c["windows"]:
            d = w["dockerd_cpu_s_per_hour"]
            if "ticks" in w:
                out(f"| {w['name']} | {d:.1f} s/h | {d - idle:+.1f} s/h | "
                    f"{w['rtinspect_cpu_s_per_hour']:.1f} s/h | {w['ticks']} | {mib(w['rss_kib'])} | "
                    f"{mib(w['hwm_kib'])} | {w['threads']} ({', '.join(w['thread_names'])}) |")
            else:
                out(f"| {w['name']} | {d:.1f} s/h | – | – | – | – | – | – |")
        out("")
        tick_ms = 1000 // os.sysconf("SC_CLK_TCK")
        out("dockerd and containerd CPU is utime + stime from `/proc/PID/stat`, in clock ticks "
            f"of {tick_ms} ms: one tick in a {c['window_s']:.0f} s window is "
            f"{tick_ms / 1000 / c['window_s'] * 3600:.1f} s/h. The containers are `sleep` "
            "without healthchecks, so the daemon's own idle work is the baseline.")
        out("")
    if a.footprint:
        f = json.load(open(a.footprint))
        out(f"### Footprint at {f['records']:,} records (fake engine `tests/bench/fake_engine.rs` "
            f"with a silent `/events` stream), `--interval {f['interval']}`, {f['seconds']:.0f} s, "
            "all side by side")
        out("")
        out("| build | events | VmRSS | VmHWM | threads | thread names | ticks | warnings |")
        out("|---|---|---|---|---|---|---|---|")
        for r in f["runs"]:
            out(f"| {r['build']} | {r['mode']} | {mib(r['rss_kib'])} | {mib(r['hwm_kib'])} | "
                f"{r['threads']} | {', '.join(r['thread_names'])} | {r['ticks']} | {r['warnings']} |")
        out("")
        for build in dict.fromkeys(r["build"] for r in f["runs"]):
            by = {r["mode"]: r for r in f["runs"] if r["build"] == build}
            grew = by["on"]["threads"] - by["off"]["threads"]
            hwm = max(r["hwm_kib"] for r in by.values())
            out(f"Targets, {build}: RSS ≤ 6 MiB at {f['records']:,} records "
                f"{'met' if hwm <= 6 * 1024 else 'NOT met'} (largest VmHWM {mib(hwm)}); "
                f"threads grow by exactly one with events on: "
                f"{'met' if grew == 1 else f'NOT met ({grew:+d})'}.")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.file:
        with open(a.file, "w") as fh:
            fh.write(text)


def fmt_load(load):
    return "/".join(f"{x:.2f}" for x in load)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--pids", required=True)
    common.add_argument("--out", required=True)
    common.add_argument("--interval", default="15s")

    s = sub.add_parser("latency", parents=[common])
    s.add_argument("--rtinspect", required=True)
    s.add_argument("--docker-host", required=True)
    s.add_argument("--events", choices=["on", "off"], required=True)
    s.add_argument("--failures", type=int, default=50)
    s.add_argument("--window", type=float, default=60)
    s.add_argument("--health-interval", type=int, default=10)
    s.add_argument("--label", required=True)
    s.add_argument("--fifo-dir", required=True)

    s = sub.add_parser("cost", parents=[common])
    s.add_argument("--rtinspect", required=True)
    s.add_argument("--docker-host", required=True)
    s.add_argument("--daemon-pids", required=True)
    s.add_argument("--containers", type=int, default=100)
    s.add_argument("--seconds", type=float, default=120)
    s.add_argument("--label", required=True)
    s.add_argument("--work", required=True)

    s = sub.add_parser("footprint", parents=[common])
    s.add_argument("--build", action="append", required=True, metavar="NAME=PATH",
                   help="an rtinspect binary to measure, with the name the table gives it")
    s.add_argument("--engine", required=True)
    s.add_argument("--socket", required=True)
    s.add_argument("--records", type=int, default=1000)
    s.add_argument("--seconds", type=float, default=50)
    s.add_argument("--work", required=True)

    s = sub.add_parser("table")
    s.add_argument("--machine", required=True)
    s.add_argument("--latency", nargs="*", default=[])
    s.add_argument("--cost")
    s.add_argument("--footprint")
    s.add_argument("--file")

    a = p.parse_args()
    if a.cmd == "table":
        table(a)
        return
    # SIGTERM (the shell's trap) unwinds through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    children = Children(a.pids)
    try:
        {"latency": latency, "cost": cost, "footprint": footprint}[a.cmd](a, children)
    finally:
        children.stop_all()


if __name__ == "__main__":
    main()
