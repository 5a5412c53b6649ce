"""/docs in a real browser: headless Chromium (Debian's ``chromium`` package) renders Swagger UI from
the app's own files, lists the operations, and leaves a screenshot in the test-output folder
(``SHELF_TEST_OUTPUT_DIR``, default ``test-output/``, gitignored) for a person to look at.

The browser is given no network but the app's port: a page that still needed a CDN would render empty.
Skipped only when no chromium is installed (``.ci/run`` installs it; the README says so).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(BROWSER is None, reason="needs chromium (apt-get install chromium)"),
]


def output_dir() -> Path:
    folder = Path(os.environ.get("SHELF_TEST_OUTPUT_DIR") or ROOT / "test-output")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def served(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def chromium(*args: str, profile: Path) -> str:
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",  # tests run as root in CI
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9",  # anything not on 127.0.0.1 (a CDN) is unreachable
        "--proxy-bypass-list=127.0.0.1",
        "--virtual-time-budget=15000",  # run the page's scripts and its fetch of /openapi.json
        "--window-size=1280,1600",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout  # noqa: S603


def test_docs_render_the_operations_offline_and_leave_a_screenshot(served, tmp_path):
    dom = chromium("--dump-dom", f"{served}/docs", profile=tmp_path / "dom")
    assert 'class="swagger-ui' in dom, "Swagger UI did not render"
    for path in ("/v1/products", "/v1/products/{product_id}", "/v1/categories"):
        assert f'data-path="{path}"' in dom, f"{path} is not listed"
    assert "opblock-get" in dom and "opblock-post" in dom
    screenshot = output_dir() / "docs.png"
    screenshot.unlink(missing_ok=True)
    chromium(f"--screenshot={screenshot}", f"{served}/docs", profile=tmp_path / "shot")
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
