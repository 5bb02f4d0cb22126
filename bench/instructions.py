"""Instructions per item of an in-process path, counted by valgrind: A/B on a noisy machine.

``python -m bench.instructions [--base DIR] [--small N] [--large M] MODULE [ARGS...]`` runs
``python -m MODULE -n N ARGS`` and ``-n M`` under ``valgrind --tool=cachegrind
--cache-sim=no`` and prints (instructions of M - instructions of N) / (M - N): the
instructions one more item costs, set-up and warm-up cancelled out. With ``--base`` the
same is counted with ``SRC=DIR`` (another tree, e.g. a ``git worktree`` of the previous
commit) and the change is printed. The (two or four) runs go at once.

MODULE is one of the in-process paths that take ``-n`` (``bench.meeting_path``,
``bench.relay_path``, ``bench.plain_path``). Unlike CPU time, which on a shared VM moves by
half within minutes, the count moves by well under 1% between runs, so a change of a few
per cent can be told apart; not so for ``bench.plain_path``, whose batches depend on how
its two threads interleave (up to 6% between runs). Child processes (the SMTP sink, PostgreSQL) are not counted.
Needs valgrind (the Debian package); not part of the benchmark or of CI.
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile


def count(module: str, args: list[str], n: int, src: str) -> int:
    """Instructions of one run of ``python -m module -n n args`` (with ``SRC=src``)."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "SRC": src}
    with tempfile.NamedTemporaryFile("r") as log:
        subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                        "--cachegrind-out-file=/dev/null", f"--log-file={log.name}",
                        sys.executable, "-m", module, "-n", str(n), *args],
                       env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        found = re.search(r"I\s+refs:\s+([\d,]+)", log.read())
    if found is None:
        raise RuntimeError(f"valgrind counted nothing for {module}")
    return int(found.group(1).replace(",", ""))


def per_item(runs: list[concurrent.futures.Future[int]], small: int, large: int) -> float:
    return (runs[1].result() - runs[0].result()) / (large - small)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="", help="another tree to compare with (SRC=DIR)")
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=300)
    ap.add_argument("module")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    trees = [""] + ([a.base] if a.base else [])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = {src: [pool.submit(count, a.module, a.args, n, src) for n in (a.small, a.large)]
                for src in trees}
        new, *base = [per_item(runs[src], a.small, a.large) for src in trees]
    line = f"{a.module}: {new / 1e6:.3f} M instructions an item"
    if base:
        line += f"; base {base[0] / 1e6:.3f} M, change {100 * (new - base[0]) / base[0]:+.1f}%"
    print(line)


if __name__ == "__main__":
    main()
