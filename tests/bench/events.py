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

Each command lives in a module beside this file: events_latency (latency),
events_steady (cost, footprint), events_table (table); events_procs (the
processes, the docker CLI, /proc) and events_logs (rtinspect's logs) are
what they share. This file keeps the command line and the unwinding.
"""

import argparse
import signal
import sys

from events_latency import latency
from events_procs import Children
from events_steady import cost, footprint
from events_table import table


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
