"""``cache`` stays framework-free: importing all of it loads neither Flask nor the ``api`` package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import cache, cache.api, cache.breaker, cache.config, cache.entry, cache.keys, cache.log
import cache.metrics, cache.region, cache.backends.null, cache.backends.redis
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "flask_caching", "werkzeug", "api"))
print(",".join(leaked))
"""


def test_cache_imports_nothing_from_flask_or_the_api_package():
    # A fresh interpreter: this test session has already imported Flask via tests/conftest.py.
    command = [sys.executable, "-c", PROBE]  # our own interpreter and a constant script
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S603
    assert done.stdout.strip() == ""


def test_no_cache_module_mentions_flask_or_api_imports():
    for path in (ROOT / "cache").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]):
                assert words[1].split(".")[0] not in ("flask", "flask_caching", "api"), f"{path}: {line}"
