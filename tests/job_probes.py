"""Jobs that report on the process they run in (enqueued by tests/jobs/test_jobs.py)."""

from __future__ import annotations

import sys


def app_modules_were_loaded() -> bool:
    """True if the app's modules were already imported when the job started (this module imports none)."""
    return "catalog.models" in sys.modules and "jobs.aggregates" in sys.modules


def nap(seconds: float) -> float:
    """Sleep, then say how long: a job that is still running when a test cuts its Redis."""
    import time

    time.sleep(seconds)
    return seconds
