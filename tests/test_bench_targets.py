"""The benchmark judges issue 18's targets on the figures of the store the run used."""

from __future__ import annotations

from bench import speed_targets


def _figures(database: str, ratios: dict[tuple[str, str], float], per_s: float,
             p99: float) -> dict:
    return {"run": {"database": database},
            "load1": {"ratios": [{"shape": shape, "versus": peer, "ratio": ratio}
                                 for (shape, peer), ratio in ratios.items()]},
            "load2": {"accepted_per_s": per_s, "p99_ms": p99}}


def _verdicts(figures: dict) -> dict[str, bool | None]:
    return {t["target"]: t["met"] for t in speed_targets.targets(figures)}


def test_sqlite_run_is_judged_on_sqlite_targets():
    got = _verdicts(_figures("sqlite", {("8x1", "dovecot"): 2.43, ("8x1", "sink"): 0.49,
                                        ("8x4", "dovecot"): 3.0}, 499.9, 50.0))
    assert got == {
        "round two, load 1, 8x1: >= 2.0x dovecot deliveries/s": True,
        "round two, load 1, 8x1: >= 0.5x sink deliveries/s": False,
        "round two, load 1, 8x4: >= 3.0x dovecot deliveries/s": True,
        "round two, load 2: >= 500 meeting requests/s": False,
        "round two, load 2: p99 <= 50 ms": True}


def test_postgresql_run_is_judged_on_its_own_and_a_missing_peer_is_not_measured():
    got = speed_targets.targets(_figures("postgresql", {}, 300.0, 90.0))
    assert [(t["target"], t["value"], t["met"]) for t in got] == [
        ("round two, load 1, 8x1: >= 1.2x dovecot deliveries/s",
         "not measured (add --compare dovecot)", None),
        ("round two, load 2: >= 300 meeting requests/s", "300.0/s", True)]
