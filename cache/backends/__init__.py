"""Storage backends for ``cache.region.Region``: one module per backend, as in dogpile.cache.

``redis`` is the production store; ``null`` turns caching off while running the same
region code, which is the baseline for benchmarks and the ``SHELF_CACHE_ENABLED=false`` mode.
"""
