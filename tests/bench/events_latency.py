"""Detection latency, the events benchmark's first measure (tests/bench/events.py):
failures of each kind induced at random moments among the containers a real
dockerd runs, each timed from its Docker event to its envelope on
rtinspect's stdout, beside the floor: dockerd's own inspect of the same
container, probed on the same event.
"""

import errno
import http.client
import json
import os
import random
import socket
import subprocess
import threading
import time

from events_logs import STAGES, TextLog, ms_value
from events_procs import (IMAGE, LineReader, Timeout, docker, log, parse_seconds,
                          remove_containers, run_containers, start_rtinspect, wait_for,
                          write_json)

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
