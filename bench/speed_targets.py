"""The targets of issue 18 (speed, round two), judged on one run's figures.

Each is a ratio or a rate of one run on the project's 2-core machine; which apply depends
on the store the run used (SQLite's targets are not PostgreSQL's). Load 6's targets are
``report._grown_targets``.
"""

from __future__ import annotations

from typing import Any

# (database, shape, peer) -> the least ratio of our deliveries/s to the peer's.
DELIVERY_RATIOS = {("sqlite", "8x1", "dovecot"): 2.0, ("sqlite", "8x1", "sink"): 0.5,
                   ("sqlite", "8x4", "dovecot"): 3.0, ("postgresql", "8x1", "dovecot"): 1.2}
# database -> (meeting requests accepted/s, p99 ms or None)
MEETING = {"sqlite": (500.0, 50.0), "postgresql": (300.0, None)}


def targets(figures: dict[str, Any]) -> list[dict]:
    database = figures["run"]["database"]
    return _delivery_targets(database, figures["load1"]["ratios"]) \
        + _meeting_targets(database, figures["load2"])


def _delivery_targets(database: str, ratios: list[dict]) -> list[dict]:
    found = {(r["shape"], r["versus"]): r["ratio"] for r in ratios}
    return [_target(f"round two, load 1, {shape}: >= {least}x {peer} deliveries/s",
                    found.get((shape, peer)), least, f"not measured (add --compare {peer})")
            for (db, shape, peer), least in DELIVERY_RATIOS.items() if db == database]


def _target(name: str, ratio: float | None, least: float, missing: str) -> dict:
    return {"target": name, "value": missing if ratio is None else f"{ratio:.2f}x",
            "met": None if ratio is None else ratio >= least}


def _meeting_targets(database: str, load2: dict[str, Any]) -> list[dict]:
    if database not in MEETING:
        return []
    per_s, p99 = MEETING[database]
    found = [{"target": f"round two, load 2: >= {per_s:.0f} meeting requests/s",
              "value": f"{load2['accepted_per_s']:.1f}/s",
              "met": load2["accepted_per_s"] >= per_s}]
    if p99 is not None:
        found.append({"target": f"round two, load 2: p99 <= {p99:.0f} ms",
                      "value": f"{load2['p99_ms']:.1f} ms", "met": load2["p99_ms"] <= p99})
    return found
