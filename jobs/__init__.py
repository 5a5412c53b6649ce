"""rq jobs: module-level functions that take ids and plain values, queued with their policy through
``catalog.queues``, run by ``jobs.worker``; ``jobs.cron`` queues the periodic ones."""
