"""Printing the figures: a readable table, the targets met or missed, and JSON."""

from __future__ import annotations

import json
from typing import Any

from . import cpu_split, speed_targets
from .processes import MemoryWatch

# The targets of issue 6 (a 2-core machine, the benchmark's defaults).
DOVECOT_RATIO = 1.0
REQUESTS_PER_S = 150.0
GROWTH_RATIO = 1.5
MEMORY_MB = 200.0
# The targets of issue 12 (load 5).
FREEBUSY_PER_S = 1000.0
# The target of issue 15: load 1 with user_plugin = ldap against the db plugin's.
LDAP_RATIO = 0.9
LDAP_TARGET = "mr-engine (ldap)"  # bench.ldap_load's rows
FREEBUSY_P99_MS = 50.0
RADICALE_RATIO = 10.0
# The targets of issue 18 (load 6): a store that has grown, against the fresh one.
GROWN_RATIO = 0.8
GROWN_MEMORY_MB = 200.0
BUSY_LOAD = 1.0  # a 1-minute load average above this before a load: the cores were shared


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    return lines + [_row(r, widths) for r in rows]


def ratios(load1: list[dict]) -> list[dict]:
    """ours / theirs in deliveries per second, per shape and peer."""
    out = []
    ours = {(r["connections"], r["recipients_per_message"]): r for r in load1
            if r["target"] == "mr-engine"}
    for r in load1:
        key = (r["connections"], r["recipients_per_message"])
        if r["target"] not in ("mr-engine", LDAP_TARGET) and key in ours \
                and r["deliveries_per_s"]:
            out.append({"shape": f"{key[0]}x{key[1]}", "versus": r["target"],
                        "ratio": round(ours[key]["deliveries_per_s"] / r["deliveries_per_s"], 3)})
    return out


def ldap_ratios(load1: list[dict]) -> list[dict]:
    """user_plugin = ldap / db in deliveries per second, per shape (the same run)."""
    db = {(r["connections"], r["recipients_per_message"]): r for r in load1
          if r["target"] == "mr-engine"}
    return [{"shape": f"{key[0]}x{key[1]}",
             "ratio": round(r["deliveries_per_s"] / db[key]["deliveries_per_s"], 3)}
            for r in load1 if r["target"] == LDAP_TARGET
            and (key := (r["connections"], r["recipients_per_message"])) in db
            and db[key]["deliveries_per_s"]]


def _comparable(load1: list[dict], load2: dict[str, Any]) -> dict[str, float]:
    """The figures load 6 compares, by name: mr-engine's deliveries/s per shape, and the
    meeting requests accepted per second."""
    found = {f"{r['connections']}x{r['recipients_per_message']} deliveries/s":
             r["deliveries_per_s"] for r in load1 if r["target"] == "mr-engine"}
    return {**found, "meeting requests accepted/s": load2["accepted_per_s"]}


def grown_ratios(figures: dict[str, Any]) -> list[dict]:
    """Load 6 / the fresh store's figure of the same run, per figure."""
    fresh = _comparable(figures["load1"]["results"], figures["load2"])
    grown = _comparable(figures["load6"]["load1"], figures["load6"]["load2"])
    return [{"figure": name, "fresh": fresh.get(name), "grown": value,
             "ratio": round(value / fresh[name], 3) if fresh.get(name) else None}
            for name, value in grown.items()]


def _grown_targets(load6: dict[str, Any] | None) -> list[dict]:
    if load6 is None:
        return [{"target": f"load 6: >= {GROWN_RATIO}x the fresh store's figures",
                 "value": "not measured (--no-grown)", "met": None}]
    found = [{"target": f"load 6: {r['figure']} >= {GROWN_RATIO}x fresh",
              "value": f"{r['ratio']:.2f}x" if r["ratio"] is not None else "unknown",
              "met": r["ratio"] is not None and r["ratio"] >= GROWN_RATIO}
             for r in load6["ratios"]]
    mb = load6["memory"]["vmhwm_mb"]
    return found + [{"target": f"load 6 peak memory (sum of VmHWM) <= {GROWN_MEMORY_MB:.0f} MB",
                     "value": f"{mb:.1f} MB" if mb is not None else "unknown",
                     "met": mb is not None and mb <= GROWN_MEMORY_MB}]


def _ldap_target(load1: dict[str, Any]) -> dict:
    found = load1.get("ldap_ratios") or []
    worst = min((r["ratio"] for r in found), default=None)
    return {"target": f"load 1: user_plugin = ldap >= {LDAP_RATIO}x the db plugin's "
                      "deliveries/s",
            "value": ", ".join(f"{r['shape']} {r['ratio']:.2f}x" for r in found)
            or "not measured (add --ldap)",
            "met": None if worst is None else worst >= LDAP_RATIO}


def targets(figures: dict[str, Any]) -> list[dict]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    found = []
    versus = [r for r in figures["load1"]["ratios"] if r["versus"] == "dovecot"]
    if versus:
        worst = min(versus, key=lambda r: r["ratio"])
        found.append({"target": f"load 1: >= {DOVECOT_RATIO}x Dovecot deliveries/s",
                      "value": ", ".join(f"{r['shape']} {r['ratio']:.2f}x" for r in versus),
                      "met": worst["ratio"] >= DOVECOT_RATIO})
    else:
        found.append({"target": f"load 1: >= {DOVECOT_RATIO}x Dovecot deliveries/s",
                      "value": "not measured (add --compare dovecot)", "met": None})
    found.append(_ldap_target(figures["load1"]))
    per_s = figures["load2"]["accepted_per_s"]
    found.append({"target": f"load 2: >= {REQUESTS_PER_S:.0f} meeting requests/s",
                  "value": f"{per_s:.1f}/s", "met": per_s >= REQUESTS_PER_S})
    growth = figures["load3"].get("growth")
    if growth:
        found.append({"target": f"load 3: latency at {growth['largest']} <= {GROWTH_RATIO}x "
                                f"latency at {growth['smallest']}",
                      "value": f"{growth['ratio']:.2f}x",
                      "met": growth["ratio"] <= GROWTH_RATIO})
    # Judged on the sum of the processes' peaks: never less than the true peak of the whole.
    mb = figures["memory"]["vmhwm_mb"]
    found.append({"target": f"load 4: peak resident memory (sum of VmHWM) <= {MEMORY_MB:.0f} MB",
                  "value": f"{mb:.1f} MB" if mb is not None else "unknown",
                  "met": mb is not None and mb <= MEMORY_MB})
    found += _freebusy_targets(figures["load5"])
    found += _grown_targets(figures.get("load6"))
    found += speed_targets.targets(figures)
    if figures["run"]["mode"] == "smoke":  # sizes too small to judge anything
        for t in found:
            t["met"] = None
    return found


def _freebusy_targets(load5: dict[str, Any]) -> list[dict]:
    ours = next((r for r in load5["results"] if r["target"] == "mr-engine"), None)
    per_s = ours["requests_per_s"] if ours else None
    p99 = ours["p99_ms"] if ours else None
    ratio = load5.get("ratio")
    return [{"target": f"load 5: >= {FREEBUSY_PER_S:.0f} free/busy requests/s",
             "value": f"{per_s:.0f}/s" if per_s is not None else "not measured",
             "met": per_s is not None and per_s >= FREEBUSY_PER_S},
            {"target": f"load 5: free/busy p99 <= {FREEBUSY_P99_MS:.0f} ms",
             "value": f"{p99:.1f} ms" if p99 is not None else "not measured",
             "met": p99 is not None and p99 <= FREEBUSY_P99_MS},
            {"target": f"load 5: >= {RADICALE_RATIO:.0f}x Radicale's requests/s",
             "value": f"{ratio:.1f}x" if ratio is not None else "not measured",
             "met": ratio is not None and ratio >= RADICALE_RATIO}]


def _render_freebusy(l5: dict[str, Any]) -> list[str]:
    cal = l5["calendar"]
    out = ["", f"5. Free/busy over HTTP: {cal['resource']} (equipment, capacity "
               f"{cal['capacity']}) with {cal['occurrences']:,} occurrences in {cal['series']} "
               f"series ({cal['weekday_series']} weekday, the rest weekly), {cal['first'][:10]} "
               f"to {cal['last'][:10]}, {cal['in_check_range']:,} of them in the checked "
               f"{l5['window_days']}-day range (pre-loaded in {cal['preload_seconds']:.1f} s); "
               f"mr-engine GET /freebusy/<address>.vfb vs Radicale "
               f"{l5.get('radicale_version') or '(not installed)'} free-busy-query REPORT",
           f"{l5['method']}"]
    out += table(["target", "clients", "requests", "s", "requests/s", "p50 ms", "p99 ms",
                  "connections", "wrong", "load avg before"],
                 [[r["target"], str(r["clients"]), str(r["requests"]), f"{r['seconds']:.1f}",
                   _rate(r["requests_per_s"]), f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                   str(r["connections_opened"]), str(r["failed"]),
                   f"{r['load_average_1min_before']:.2f}"] for r in l5["results"]])
    if l5.get("ratio") is not None:
        out.append(f"ratio (mr-engine / Radicale, requests/s): {l5['ratio']:.1f}x")
    if l5.get("radicale_first_report_seconds") is not None:
        out.append(f"Radicale's first REPORT, not measured (it builds its item cache): "
                   f"{l5['radicale_first_report_seconds']:.1f} s")
    busy = [r["target"] for r in l5["results"] if r["load_average_1min_before"] > BUSY_LOAD]
    if busy:
        out.append(f"NOTE: the load average was above {BUSY_LOAD} before {', '.join(busy)}: "
                   "other processes shared the cores, those figures are low")
    return out + _render_check(l5["check"])


def _render_grown(l6: dict[str, Any]) -> list[str]:
    st, c = l6["store"], l6["store"]["counts"]
    made = (f"cached copy used (built in {st['build_seconds']:.1f} s, copied and synced in "
            f"{st['copy_seconds']:.1f} s)" if st["cache"] == "used" else
            f"built in {st['build_seconds']:.1f} s; cache: {st['cache']}")
    out = ["", f"6. A store that has grown: loads 1, 2 and 4 again with {c['messages']:,} more "
               f"messages in {c['stores']:,} more mailboxes' stores and {c['resources']:,} "
               f"rooms holding {c['occurrences']:,} booked occurrences ({c['bookings']:,} "
               "bookings)", f"store {st['key']}: {made}"]
    out += table(["figure", "fresh store", "grown store", "grown / fresh"],
                 [[r["figure"], f"{r['fresh']:.1f}" if r["fresh"] is not None else "-",
                   f"{r['grown']:.1f}", f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"]
                  for r in l6["ratios"]])
    p99 = {f"{r['connections']}x{r['recipients_per_message']}": r["p99_ms"] for r in l6["load1"]}
    out.append("p99 on the grown store: " + ", ".join(
        f"{k} {v:.1f} ms" for k, v in p99.items()) +
        f", meeting requests {l6['load2']['p99_ms']:.1f} ms")
    mem = l6["memory"]
    if mem["vmhwm_kb"] is not None:
        out.append(f"peak memory (load 4's measure), sum of VmHWM: {mem['vmhwm_mb']:.1f} MB"
                   + (f"; largest total PSS {mem['pss_peak_mb']:.1f} MB"
                      if mem["pss_peak_kb"] is not None else ""))
    return out


def _rate(per_s: float) -> str:
    """Two decimals below 10/s (Radicale's rate), none above."""
    return f"{per_s:.2f}" if per_s < 10 else f"{per_s:.0f}"


def _render_check(check: dict[str, Any]) -> list[str]:
    """One line per answer to the checked range: its busy time against the plan's."""
    out = [f"check, {check['start'][:16]} to {check['end'][:16]} UTC:"]
    for name, what in (("engine", "mr-engine at capacity 2 (busy where both are taken)"),
                       ("engine_capacity_1", "mr-engine, a capacity-1 twin of the series there"),
                       ("radicale", "Radicale (no capacity: busy where any event is)")):
        c = check.get(name)
        if c is None:
            continue
        verdict = "matches the plan" if c["matches_plan"] else "DIFFERS from the plan"
        found = (f"{c['periods_found']} periods, {c['busy_seconds_found'] / 3600:.1f} h busy"
                 if c["status"] == 200 else f"status {c['status']}")
        out.append(f"  {what}: {found}; {verdict} ({c['periods_planned']} periods)")
    if "radicale_equals_engine_capacity_1" in check:
        same = check["radicale_equals_engine_capacity_1"]
        out.append(f"  Radicale's periods {'equal' if same else 'DIFFER from'} the "
                   f"capacity-1 twin's")
    return out


def render(figures: dict[str, Any]) -> str:
    run = figures["run"]
    out = [f"mr-engine benchmark: {run['database']} store, {run['cpus']} CPUs "
           f"({run['cpu_model']}), "
           f"Python {run['python']}, {run['mode']} run, {run['total_seconds']:.0f} s",
           f"engine: {' '.join(run['engine_command'])}; settings from the environment: "
           f"{', '.join(f'{k}={v}' for k, v in run['engine_env'].items()) or 'none (defaults)'}"]
    for warning in run["warnings"]:
        out.append(f"WARNING: {warning}")

    l1 = figures["load1"]
    out += ["", f"1. Plain delivery over LMTP: {l1['message_size']}-byte messages, unique "
                f"Message-IDs, each 250 sent after the durable commit"]
    rows = [[r["target"], f"{r['connections']} x {r['recipients_per_message']}",
             str(r["deliveries"]), f"{r['seconds']:.1f}", f"{r['deliveries_per_s']:.0f}",
             f"{r['messages_per_s']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
             str(r["refused"])]
            for r in sorted(l1["results"], key=lambda r: (r["recipients_per_message"],
                                                          r["target"] != "mr-engine"))]
    out += table(["target", "conns x rcpts", "deliveries", "s", "deliveries/s", "msgs/s",
                  "p50 ms", "p99 ms", "refused"], rows)
    if l1["ratios"]:
        out.append("ratios (ours / theirs, deliveries/s): " + "; ".join(
            f"{r['shape']} vs {r['versus']} {r['ratio']:.2f}x" for r in l1["ratios"]))
    if l1.get("ldap_ratios"):
        out.append("user_plugin = ldap / db (deliveries/s): " + "; ".join(
            f"{r['shape']} {r['ratio']:.2f}x" for r in l1["ldap_ratios"]))
    out += cpu_split.delivery_lines(l1["results"])

    l2 = figures["load2"]
    out += ["", f"2. Meeting requests over LMTP to an equipment resource (capacity "
                f"{l2['capacity']}, mr_accept, decline_conflict) pre-loaded with "
                f"{l2['preloaded_bookings']} bookings / {l2['preloaded_occurrences']} "
                f"occurrences ({l2['preload_seconds']:.1f} s)"]
    out += table(["conns", "requests", "accepted+answered", "declined", "s", "accepted/s",
                  "p50 ms", "p99 ms"],
                 [[str(l2["connections"]), str(l2["requests_sent"]),
                   str(l2["accepted_and_answered"]), str(l2["declined"]), f"{l2['seconds']:.1f}",
                   f"{l2['accepted_per_s']:.1f}", f"{l2['p50_ms']:.1f}", f"{l2['p99_ms']:.1f}"]])
    drained = (f"all sent {l2['relay_drain_seconds']:.1f} s after the load"
               if l2["relay_drain_seconds"] is not None
               else f"{l2['still_queued_after_drain_wait']} still queued after the wait")
    out.append(f"relay to the sink smarthost: {l2['relayed_by_end']} of these replies sent by "
               f"the end of the load; {drained}")
    out += cpu_split.request_lines(l2)

    l3 = figures["load3"]
    out += ["", f"3. Conflict-check latency as the calendar grows ({l3['method']})"]
    out += table(["occurrences", "median us", "p99 us", "busy found", "repetitions"],
                 [[f"{p['occurrences']:,}", f"{p['median_us']:.0f}", f"{p['p99_us']:.0f}",
                   str(p["busy_intervals_found"]), str(p["repetitions"])]
                  for p in l3["points"]])
    if l3.get("growth"):
        g = l3["growth"]
        out.append(f"growth: median at {g['largest']:,} / median at {g['smallest']:,} = "
                   f"{g['ratio']:.2f}x")

    mem = figures["memory"]
    out += ["", "4. Peak resident memory of mr-engine serve (the supervisor and its worker "
                "processes) over loads 1 and 2"]
    if mem["vmhwm_kb"] is not None:
        out.append(f"sum of each process's VmHWM (a page shared by processes counted in each, "
                   f"an upper bound): {mem['vmhwm_kb']} kB = {mem['vmhwm_mb']:.1f} MB")
    if mem["pss_peak_kb"] is not None:
        out.append(f"largest total PSS, sampled every {MemoryWatch.INTERVAL:g} s (a shared page "
                   f"counted once): {mem['pss_peak_kb']} kB = {mem['pss_peak_mb']:.1f} MB")

    out += _render_freebusy(figures["load5"])
    if "load6" in figures:
        out += _render_grown(figures["load6"])

    out += ["", "Targets" + (" (smoke run: sizes too small to judge)" if run["mode"] == "smoke"
                             else "")]
    for t in figures["targets"]:
        verdict = {True: "met", False: "MISSED", None: "-"}[t["met"]]
        out.append(f"  {verdict:6}  {t['target']}: {t['value']}")
    return "\n".join(out)


def as_json(figures: dict[str, Any]) -> str:
    return json.dumps(figures, indent=2, default=str)
