"""The events benchmark's plumbing (tests/bench/events.py): the processes it
starts, mirrored in the pid file the shell's trap reads; the docker CLI and
the containers it starts; a pipe read line by line; rtinspect started with
its log in a file; /proc readings; waits; the JSON it writes.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import threading
import time

# The image tests/services.sh imports for the benchmarks ($bench_image).
IMAGE = "rtinspect-bench/busybox:1"


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


def parse_seconds(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not m:
        raise ValueError(f"an interval: {text}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
