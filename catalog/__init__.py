"""Shelf's core: the catalog's data, rules and side effects, with no web framework in it.

Models, services, the write effects (cache outbox, recompute requests, edge purges), how a
resource becomes bytes and an ETag, the cached resources' declaration, Settings, and
``runtime.build_runtime(settings)``, which builds what a process runs on. The HTTP edge
(``api``), the jobs (``jobs``), the CLI and the benchmarks all import it; it imports neither.
"""
