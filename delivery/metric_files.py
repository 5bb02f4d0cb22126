"""The directory where the workers of one ``mr-engine serve`` keep their metric values.

prometheus_client's multiprocess mode: each worker writes its counters to files of its own
in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds up all the files (``mr_engine.metrics``).
The supervisor makes a fresh, empty directory for every run (values of an earlier run must
not be added in), sets the variable before forking, so that every worker imports
prometheus_client in that mode, and removes the directory at exit. A dead worker's counters
stay counted; its live gauges (open sessions) are dropped (``mark_process_dead``).

Standard library only at import: the supervisor imports no engine code (``workers.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile

# prometheus_client's name (as mr_engine.metrics.MULTIPROC_ENV, which cannot be imported
# here: it imports prometheus_client, which must not be loaded before the variable is set).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricFiles:
    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="mr-engine-metrics-")
        os.environ[MULTIPROC_ENV] = self.path

    def worker_died(self, pid: int) -> None:
        # Imported once the variable is set, like everything in the workers.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.path)

    def remove(self) -> None:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(self.path, ignore_errors=True)
