#!/usr/bin/env python3
"""The measuring half of tests/bench/events.sh (which owns the daemons, the
build and the cleanup): detection latency on a real dockerd, dockerd's
steady-state CPU with and without the events stream, rtinspect's footprint
at 1,000 records on the fake engine, and the Markdown table.

Every process it starts is listed in the pid file given with --pids (the
shell's trap ends what is left there) and ended here on the way out, SIGTERM
included. Every container it starts carries the run's label and is removed
on the way out.

  latency    induced failures, events on or off: JSON of latencies
  cost       dockerd + containerd CPU per hour, 100 real containers
  footprint  rtinspect RSS and threads at 1,000 records, on and off at once
  table      the Markdown table from the JSON files
"""

import argparse
import concurrent.futures
import datetime
import errno
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

IMAGE = "rtinspect-test/busybox:1"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
# The tick log line ends with the tick's duration in Rust's Debug format.
TICK_TOOK = re.compile(r", ([0-9.]+)(ns|µs|ms|s)$")
DURATION_UNIT_MS = {"ns": 1e-6, "µs": 1e-3, "ms": 1.0, "s": 1000.0}
KINDS = ("kill", "exit", "health")
KIND_NAMES = {
    "kill": "`docker kill`",
    "exit": "exits by itself (`exit 3`)",
    "health": "healthcheck turns unhealthy",
}
# Which Docker event marks each kind of failure.
FAILURE_ACTION = {"kill": "die", "exit": "die", "health": "health_status: unhealthy"}


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
        return children.start([rt, "run", *args], stdout=stdout, stderr=err, env=env)
    finally:
        err.close()


# ---------------------------------------------------------------- latency


def latency(a, children):
    host, mode, n = a.docker_host, a.events, a.failures
    label = a.label
    os.makedirs(a.fifo_dir, exist_ok=True)
    result = {"mode": mode, "failures_per_kind": n, "window_s": a.window,
              "health_interval_s": a.health_interval, "load_at_start": os.getloadavg()}

    # The failure events, as dockerd stamps them.
    failures = {}  # container id -> (action, timeNano)
    ev_lock = threading.Lock()

    def on_event(line, _now):
        try:
            e = json.loads(line)
        except ValueError:
            return
        cid, action = e.get("Actor", {}).get("ID", ""), e.get("Action", "")
        if action == "die" or action == "health_status: unhealthy":
            with ev_lock:
                failures.setdefault((cid, action), e.get("timeNano", 0))

    events = children.start(
        ["docker", "-H", host, "events", "--format", "{{json .}}",
         "--filter", "type=container", "--filter", f"label={label}",
         "--filter", "event=die", "--filter", "event=health_status"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    LineReader(events.stdout, on_event)

    # The containers: kill ones sleep; the others wait on a FIFO for their
    # delay, so that the failures start only after rtinspect's first tick.
    specs, kind_of = [], {}
    for i in range(n):
        for kind in KINDS:
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
    ids = {}
    try:
        started = time.monotonic()
        log(f"events {mode}: starting {len(specs)} containers")
        ids = run_containers(host, specs)
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
        # Debug logs in JSON: the inspector logs "Docker event: …" when it
        # takes a nudge, which splits the latency in two.
        rt = start_rtinspect(children, a.rtinspect,
                             ["--docker-host", host, "--label", label, "--interval", a.interval,
                              "--sink", "stdout", "--events", mode, "--log-format", "json"],
                             err_path, {"RUST_LOG": "rtinspect=debug"})
        LineReader(rt.stdout, on_envelope)
        wait_for("rtinspect's first tick", lambda: ticks_logged(err_path, len(ids)) >= 1, 60)
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
                time.sleep(max(0.0, go + d - time.time()))
                killers.append(subprocess.Popen(["docker", "-H", host, "kill", cid],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for k in killers:
                k.wait()

        killer = threading.Thread(target=kill_on_time, daemon=True)
        killer.start()

        def done():
            if rt.poll() is not None:
                raise RuntimeError(f"rtinspect exited with {rt.returncode}; see {err_path}")
            with ev_lock:
                seen = {cid for (cid, _a) in failures}
            return all(ids[k] in seen and ids[k] in arrivals for k in ids)

        interval_s = parse_seconds(a.interval)
        budget = a.window + a.health_interval + interval_s + 30
        try:
            wait_for("every failure reported", done, budget, every=0.25)
        except Timeout as e:
            log(f"events {mode}: {e}; counting what arrived")
        killer.join(timeout=30)
        result["load_at_end"] = os.getloadavg()
        result["envelope_lines"] = lines[0]

        # When the inspector took each container's nudge, by action; how
        # long the ticks after go took (a nudge waits for the tick in hand).
        nudged, ticks = {}, []
        for e in log_lines(err_path):
            msg = e.get("msg", "")
            if msg.startswith("Docker event: ") and "ts" in e:
                key = (e.get("container_id", ""), msg[len("Docker event: "):])
                nudged.setdefault(key, rfc3339_ns(e["ts"]))
            took = TICK_TOOK.search(msg)
            if took and msg.startswith("tick: ") and rfc3339_ns(e["ts"]) >= go * 1e9:
                ticks.append(float(took.group(1)) * DURATION_UNIT_MS[took.group(2)])
        result["tick_ms"] = ticks
        by_kind = {k: {"induced": 0, "events": 0, "matched": 0, "early": 0, "latencies_ms": [],
                       "to_nudge_ms": [], "nudge_to_envelope_ms": []}
                   for k in KINDS}
        for key, cid in ids.items():
            kind = kind_of[key]
            s = by_kind[kind]
            s["induced"] += 1
            with ev_lock:
                at = failures.get((cid, FAILURE_ACTION[kind]))
            if at is None:
                continue
            s["events"] += 1
            if cid not in arrivals:
                continue
            s["matched"] += 1
            ms = (arrivals[cid] - at) / 1e6
            if ms < 0:
                s["early"] += 1
            s["latencies_ms"].append(ms)
            took = nudged.get((cid, FAILURE_ACTION[kind]))
            if took is not None:
                s["to_nudge_ms"].append((took - at) / 1e6)
                s["nudge_to_envelope_ms"].append((arrivals[cid] - took) / 1e6)
        result["kinds"] = by_kind
        result["rtinspect_warnings"] = warnings_logged(err_path)
        children.stop(rt)
    finally:
        children.stop(events)
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
            f"{l0['failures_per_kind']} failures per kind and mode at delays drawn uniformly "
            f"over {l0['window_s']} s after the first tick; healthchecks every "
            f"{l0['health_interval_s']} s. Percentiles by nearest rank: with fewer than 100 "
            "samples, p99 is the maximum.")
        out("")
        out("| failure | events | matched | p50 | p90 | p99 | max |")
        out("|---|---|---|---|---|---|---|")
        problems, early = [], []
        for kind in KINDS:
            for r in lat:
                s = r["kinds"][kind]
                v = sorted(s["latencies_ms"])
                matched = f"{s['matched']}/{s['induced']}"
                if s["matched"] != s["induced"]:
                    matched += " ⚠"
                    problems.append(f"{KIND_NAMES[kind]}, events {r['mode']}: "
                                    f"{s['induced']} induced, {s['events']} failure events seen, "
                                    f"{s['matched']} matched to an envelope")
                if s["early"]:
                    early.append(f"{KIND_NAMES[kind]}, events {r['mode']}: {s['early']}")
                out(f"| {KIND_NAMES[kind]} | {r['mode']} | {matched} | {fmt_ms(percentile(v, 50))} | "
                    f"{fmt_ms(percentile(v, 90))} | {fmt_ms(percentile(v, 99))} | "
                    f"{fmt_ms(v[-1] if v else None)} |")
        out("")
        on = [r for r in lat if r["mode"] == "on"]
        if on:
            kinds = [r["kinds"][k] for r in on for k in KINDS]
            worst = max(percentile(sorted(s["latencies_ms"]), 99) or 0 for s in kinds)
            missed = sum(s["induced"] - s["matched"] for s in kinds)
            verdict = "met" if worst <= 100 and not missed else "NOT met"
            out(f"Target p99 ≤ 100 ms with events on: {verdict} (worst p99 {fmt_ms(worst)}"
                + (f"; {missed} failures never reported count as misses" if missed else "") + ").")
        out("Every failure was matched to its envelope." if not problems
            else "NOT every failure matched (percentiles are of the matched ones): "
            + "; ".join(problems) + ".")
        if early:
            out("Envelopes read before the failure's Docker event (negative latencies, kept in "
                "the percentiles): " + "; ".join(early) + ".")
        for r in lat:
            out(f"Events {r['mode']}: {r['containers_started_in_s']} s to start "
                f"{3 * r['failures_per_kind']} containers; load average at go "
                f"{fmt_load(r['load_at_go'])}, at the end {fmt_load(r['load_at_end'])}; "
                f"{r['envelope_lines']} envelope lines; rtinspect warnings: {r['rtinspect_warnings']}.")
        out("")
        for r in on:
            out("Where the time goes with events on, from rtinspect's debug log (the inspector "
                "logs `Docker event: …` when it takes the nudge, before it inspects):")
            out("")
            out("| failure | event → nudge taken: p50 | p99 | max | "
                "nudge → envelope read: p50 | p99 | max |")
            out("|---|---|---|---|---|---|---|")
            for kind in KINDS:
                a_ = sorted(r["kinds"][kind]["to_nudge_ms"])
                b_ = sorted(r["kinds"][kind]["nudge_to_envelope_ms"])
                out(f"| {KIND_NAMES[kind]} | {fmt_ms(percentile(a_, 50))} | "
                    f"{fmt_ms(percentile(a_, 99))} | {fmt_ms(a_[-1] if a_ else None)} | "
                    f"{fmt_ms(percentile(b_, 50))} | {fmt_ms(percentile(b_, 99))} | "
                    f"{fmt_ms(b_[-1] if b_ else None)} |")
            out("")
            t = sorted(r.get("tick_ms", []))
            if t:
                out(f"A nudge that arrives during a tick is taken between its records, so a "
                    f"tick delays it by one inspect at most. For scale: {len(t)} "
                    f"tick{'s' if len(t) != 1 else ''} over "
                    f"{3 * r['failures_per_kind']} records after go took {fmt_ms(percentile(t, 50))} "
                    f"(median), {fmt_ms(t[-1])} (longest).")
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
