"""The rq worker class Shelf runs: ``rq worker --worker-class jobs.worker.Worker ...``.

rq forks a work horse for every job, and the horse imports the job's module before
running it. Our job modules import the whole app stack (Flask, SQLAlchemy, marshmallow,
flask-smorest): about 0.7 s per job, measured, several times the work of a recompute, so
a burst of reviews drained at little more than one job a second. Importing the job
modules here, in the worker process, means every fork starts with them loaded. Only
modules are loaded before the fork: no app is built and no connection opened (each horse
builds its own, see ``jobs.context``), so nothing is shared across processes.
"""

from __future__ import annotations

import rq

from jobs import aggregates, maintenance, warming  # noqa: F401 - loaded once, for every forked job


class Worker(rq.Worker):
    """rq's worker; what makes it ours is that importing it loads the job modules first."""
