"""The events benchmark's Markdown table (tests/bench/events.py), from the
JSON files of its measures: percentiles by nearest rank, the targets and
whether they were met.
"""

import json
import math
import os
import sys

from events_latency import BOOT_DELAYS_S, KIND_NAMES, KINDS
from events_logs import STAGES

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
