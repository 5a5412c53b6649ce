"""Jobs that report on the process they run in (enqueued by tests/test_jobs.py)."""

from __future__ import annotations

import sys


def app_modules_were_loaded() -> bool:
    """True if the app's modules were already imported when the job started (this module imports none)."""
    return "api.models" in sys.modules and "jobs.aggregates" in sys.modules
