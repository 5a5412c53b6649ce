"""rq jobs: module-level functions that take ids and plain values (arrive with the jobs issue)."""
