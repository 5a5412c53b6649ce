"""A Varnish edge in front of a Shelf server, for the tests and the edge benchmark arms.

``edge(backend_port)`` starts ``varnishd`` from the distribution's packages (``varnish`` and
``varnish-modules``) in the foreground on a free loopback port, in a temporary folder: its
working directory (``-n``) and the deployment file ``shelf-backend.vcl`` (the backend on
``backend_port``, purges allowed from loopback) that the repository's ``varnish/shelf.vcl``
includes. No management port (``-T none``): nothing but this helper can reconfigure it, and it
stops it on exit. ``plain=True`` starts a TTL-only Varnish instead (no tags, no purge), the
baseline the edge arm is compared with. ``stats()`` reads its counters with ``varnishstat``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VCL_DIR = ROOT / "varnish"
START_TIMEOUT_SECONDS = 30.0

BACKEND_VCL = """backend shelf {{
    .host = "127.0.0.1";
    .port = "{port}";
    .first_byte_timeout = 30s;
}}

acl shelf_purgers {{
{purgers}
}}
"""

PLAIN_VCL = """vcl 4.1;
# A TTL-only Varnish: Shelf's Cache-Control and nothing else (no tags, no purge).
include "shelf-backend.vcl";

sub vcl_recv {
    if (req.method == "PURGE" && client.ip ~ shelf_purgers) {
        return (synth(501, "a TTL-only Varnish purges nothing"));
    }
}

sub vcl_deliver {
    if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
"""


@dataclass
class Varnish:
    url: str
    workdir: Path
    process: subprocess.Popen

    def stats(self) -> dict[str, int]:
        """MAIN counters (cache_hit, cache_miss, n_object, ...) by name."""
        out = subprocess.run(  # noqa: S603
            ["varnishstat", "-n", str(self.workdir / "n"), "-j", "-1"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        counters = json.loads(out).get("counters", {})
        return {
            name.removeprefix("MAIN."): c["value"] for name, c in counters.items() if name.startswith("MAIN.")
        }


def available() -> bool:
    return shutil.which("varnishd") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def edge(
    backend_port: int,
    purgers: tuple[str, ...] = ("127.0.0.1", "::1"),
    plain: bool = False,
    port: int | None = None,
) -> Iterator[Varnish]:
    """Varnish on ``port`` (a free one by default) in front of ``backend_port``, until the block ends."""
    workdir = Path(tempfile.mkdtemp(prefix="shelf-varnish-"))
    acl = "\n".join(f'    "{address}";' for address in purgers)
    (workdir / "shelf-backend.vcl").write_text(BACKEND_VCL.format(port=backend_port, purgers=acl))
    vcl = VCL_DIR / "shelf.vcl"
    if plain:
        vcl = workdir / "plain.vcl"
        vcl.write_text(PLAIN_VCL)
    port = port or free_port()
    command = [
        "varnishd", "-F", "-j", "none", "-n", str(workdir / "n"), "-a", f"127.0.0.1:{port}", "-T", "none",
        "-f", str(vcl), "-p", f"vcl_path={workdir}:{VCL_DIR}", "-s", "malloc,256m",
    ]  # fmt: skip
    log = (workdir / "varnishd.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        _wait_listening(port, process, workdir)
        yield Varnish(f"http://127.0.0.1:{port}", workdir, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen, workdir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("varnishd exited: " + (workdir / "varnishd.log").read_text()[-2000:])
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"varnishd did not listen on {port} within {START_TIMEOUT_SECONDS} s")
