"""Periodic jobs, run by ``rq cron jobs/cron.py`` beside the worker (the run command and compose start it).

* the full aggregate recompute, the backstop for any recompute a write could
  not queue (every ``SHELF_FULL_RECOMPUTE_SECONDS``, default an hour);
* the outbox drain, for cache invalidations a crashed process left behind
  (every ``OUTBOX_DRAIN_SECONDS``).
"""

from rq import cron

from api.config import Settings
from jobs import aggregates, maintenance
from jobs.queues import DEFAULT, HIGH, POLICIES

OUTBOX_DRAIN_SECONDS = 10

_settings = Settings.from_env()
_full = POLICIES["recompute_all"]
_drain = POLICIES["drain_outbox"]

cron.register(
    aggregates.recompute_all,
    DEFAULT,
    interval=_settings.full_recompute_seconds,
    job_timeout=_full.timeout,
    result_ttl=_full.result_ttl,
    failure_ttl=_full.failure_ttl,
    meta={"kind": "recompute_all"},
)
cron.register(
    maintenance.drain_outbox,
    HIGH,
    interval=OUTBOX_DRAIN_SECONDS,
    job_timeout=_drain.timeout,
    result_ttl=_drain.result_ttl,
    failure_ttl=_drain.failure_ttl,
    meta={"kind": "drain_outbox"},
)
