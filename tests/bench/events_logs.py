"""rtinspect's logs as the events benchmark reads them (tests/bench/events.py):
its text log followed as it grows, entry by entry, and its ticks; the stage
fields of its `detected` lines; and, from its JSON log, its warnings and
ticks.
"""

import datetime
import json
import re
import threading

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
# The tick log line ends with the tick's duration in Rust's Debug format.
TICK_TOOK = re.compile(r", ([0-9.]+)(ns|µs|ms|s)$")
DURATION_UNIT_MS = {"ns": 1e-6, "µs": 1e-3, "ms": 1.0, "s": 1000.0}
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


def ms_value(text):
    """A `*_ms` field: a number of ms, or a Rust Duration (`3.1ms`, `412µs`)."""
    try:
        return float(text)
    except ValueError:
        m = re.fullmatch(r"([0-9.]+)(ns|µs|us|ms|s)", text)
        if m:
            return float(m.group(1)) * {**DURATION_UNIT_MS, "us": 1e-3}[m.group(2)]
        return None
