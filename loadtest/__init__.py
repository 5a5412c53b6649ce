"""The Locust load-test suite and the benchmark runner that compares the cache's arms side by side.

``locustfile.py`` holds the personas (shopper, browser, writer, floor); ``run.py`` seeds the benchmark
catalog, runs every arm against a fresh gunicorn and writes ``benchmarks.md`` from the measurements.
"""
