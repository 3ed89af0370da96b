"""The events benchmark's steady-state measures (tests/bench/events.py):
dockerd's and containerd's CPU with no rtinspect, events off and events on
over real containers; and rtinspect's footprint at 1,000 records on the fake
engine, every build with events on and off side by side.
"""

import os
import subprocess
import time

from events_logs import ticks_logged, warnings_logged
from events_procs import (IMAGE, cpu_ticks, log, parse_seconds, proc_status, remove_containers,
                          run_containers, start_rtinspect, thread_names, wait_for, write_json)

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
