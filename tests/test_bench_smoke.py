"""``python -m bench --smoke`` runs every load end to end and prints its figures.

Only that the benchmark works is checked (the real server as a subprocess, the raw LMTP
client, the sink peer, the in-process conflict check, load 5's HTTP client against the
engine's free/busy and Radicale's REPORT, and that both show the planned busy time; load 6
on a tiny grown store); the smoke sizes are far too small for the figures to mean anything,
so no timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from mr_engine.testing import slapd
from mr_engine.testing.paths import checkout_of

ROOT = checkout_of(__file__)


# Load 1 with user_plugin = ldap too, where slapd is installed (CI installs it).
LDAP = slapd.missing() is None


def _run_smoke() -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    return subprocess.run([sys.executable, "-m", "bench", "--smoke", "--compare", "sink",
                           "--json", *(["--ldap"] if LDAP else [])], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=150)


def _figures(stdout: str) -> dict:
    start = stdout.index("\n{\n")  # the JSON document follows the table
    return json.loads(stdout[start:])


def test_smoke_run_exits_0_and_prints_every_load():
    proc = _run_smoke()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for heading in ("1. Plain delivery over LMTP", "2. Meeting requests over LMTP",
                    "3. Conflict-check latency", "4. Peak resident memory",
                    "5. Free/busy over HTTP", "6. A store that has grown", "Targets"):
        assert heading in out, out

    figures = _figures(out)
    load1 = figures["load1"]["results"]
    shapes = {(r["target"], r["recipients_per_message"]) for r in load1}
    ldap = {("mr-engine (ldap)", 1), ("mr-engine (ldap)", 4)} if LDAP else set()
    assert shapes == {("mr-engine", 1), ("mr-engine", 4), ("sink", 1), ("sink", 4), *ldap}
    for result in load1:
        assert result["deliveries"] == result["messages"] * result["recipients_per_message"] > 0
        assert result["refused"] == 0 and result["deliveries_per_s"] > 0
    assert {r["versus"] for r in figures["load1"]["ratios"]} == {"sink"}
    for result in load1:  # the engine's CPU split (bench.cpu_split), the peers have none
        split = result.get("cpu_us_per_message")
        assert (split is not None) == (result["target"] == "mr-engine"), result
        assert split is None or (split["protocol"] > 0 and split["commit"] > 0)
    assert "CPU per delivery (one message" in out
    assert [r["shape"] for r in figures["load1"]["ldap_ratios"]] == \
        (["8x1", "8x4"] if LDAP else [])

    load2 = figures["load2"]
    assert load2["requests_sent"] > 0
    assert load2["accepted_and_answered"] == load2["requests_sent"]
    assert load2["declined"] == 0 and load2["accepted_per_s"] > 0
    assert load2["cpu_us_per_request"]["protocol"] > 0
    assert load2["cpu_us_per_request"]["commit"] > 0
    stages = load2["cpu_stages_per_request"]
    assert all(stages["us"][s] > 0 for s in ("parse", "decide", "reply_build", "commit"))
    assert sum(stages["percent"].values()) == pytest.approx(100, abs=0.5)
    assert "CPU per request: parse " in out
    lock = load2["write_lock"]  # SQLite's: the smoke run's store
    assert lock["holds"] > 0 and 0 < lock["held_share"] <= 1 and lock["held_ms"] > 0
    assert "store write lock (SQLite's one writer, all workers): held " in out

    points = figures["load3"]["points"]
    assert [p["occurrences"] for p in points] == [100, 1000]
    assert all(p["median_us"] > 0 and p["busy_intervals_found"] > 0 for p in points)

    assert figures["memory"]["vmhwm_kb"] > 0
    assert 0 < figures["memory"]["pss_peak_kb"] <= figures["memory"]["vmhwm_kb"]
    assert figures["run"]["database"] == "sqlite" and not figures["run"]["failures"]

    load5 = figures["load5"]
    assert load5["calendar"]["occurrences"] == 500 and load5["calendar"]["in_check_range"] > 0
    results = {r["target"]: r for r in load5["results"]}
    assert set(results) == {"mr-engine", "radicale"}
    for result in results.values():
        assert result["requests"] > 0 and result["failed"] == 0 and not result["errors"]
    assert results["mr-engine"]["connections_opened"] == 8  # kept alive
    assert load5["ratio"] > 0
    check = load5["check"]
    for name in ("engine", "engine_capacity_1", "radicale"):
        assert check[name]["matches_plan"] and check[name]["fbtypes"] == ["BUSY"], check
    # capacity 2 is busy only where both units are taken: less than any-event busy time
    assert 0 < check["engine"]["busy_seconds_found"] < check["radicale"]["busy_seconds_found"]
    assert check["radicale_equals_engine_capacity_1"]

    load6 = figures["load6"]
    assert load6["store"]["counts"]["messages"] == 200
    assert load6["store"]["counts"]["occurrences"] == 600
    assert load6["store"]["cache"] in ("built", "used")
    assert {r["recipients_per_message"] for r in load6["load1"]} == {1, 4}
    assert all(r["refused"] == 0 and r["deliveries"] > 0 for r in load6["load1"])
    assert load6["load2"]["accepted_and_answered"] == load6["load2"]["requests_sent"] > 0
    assert [r["figure"] for r in load6["ratios"]] == \
        ["8x1 deliveries/s", "8x4 deliveries/s", "meeting requests accepted/s"]
    assert all(r["ratio"] > 0 for r in load6["ratios"])
    assert load6["memory"]["vmhwm_kb"] > 0
