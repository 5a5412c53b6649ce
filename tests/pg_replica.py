"""A PostgreSQL primary and a streaming replica of it, started and stopped by the replica-read tests.

Both are clusters of scripts/dev_services.py's embedded PostgreSQL (pgserver's binaries, so the
same binaries on every machine; as root they run as that module's system user, since PostgreSQL
refuses root), each in its own temp folder on a free port. The replica is a ``pg_basebackup -R``
of the primary streaming from it, with ``recovery_min_apply_delay``: it replays every commit that
much later, a replica that lags on purpose.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from catalog.config import normalize_database_url
from tests.conftest import load_dev_services

dev_services = load_dev_services()


class Standby(dev_services.Postgres):
    """A hot standby of ``primary``: a base backup instead of initdb."""

    def __init__(self, root: Path, primary, apply_delay_ms: int):
        super().__init__(root)
        self.pgdata, self.primary = root / "standby", primary
        self.options = ["-c", f"recovery_min_apply_delay={apply_delay_ms}ms"]

    def initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._prepare_root()
        backup = [str(self.bin / "pg_basebackup"), "-h", dev_services.HOST, "-p", str(self.primary.port)]
        backup += ["-U", dev_services.PG_USER, "-D", str(self.pgdata), "-R", "-X", "stream", "-c", "fast"]
        result = subprocess.run(backup, capture_output=True, text=True, **self._user_kwargs())  # noqa: S603
        if result.returncode:
            raise RuntimeError(f"pg_basebackup failed:\n{result.stdout}\n{result.stderr}")


class ReplicaPair:
    """``start()`` a primary with a database ``name`` and a lagging replica of it; ``stop()`` both."""

    def __init__(self, apply_delay_ms: int = 500, database: str = "shelf"):
        self.root = Path(tempfile.mkdtemp(prefix="shelf-replica-"))
        self.database = database
        (self.root / "primary").mkdir()
        (self.root / "replica").mkdir()
        self.primary = dev_services.Postgres(self.root / "primary")
        self.replica = Standby(self.root / "replica", self.primary, apply_delay_ms)

    @property
    def primary_url(self) -> str:
        return normalize_database_url(self.primary.url(self.database))

    @property
    def replica_url(self) -> str:
        return normalize_database_url(self.replica.url(self.database))

    def start(self) -> ReplicaPair:
        try:
            self.primary.ensure_running()
            admin = create_engine(normalize_database_url(self.primary.url()), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.database}"'))
            admin.dispose()
            self.replica.ensure_running()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_replayed(self, timeout: float = 30.0) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        primary, replica = create_engine(self.primary_url), create_engine(self.replica_url)
        try:
            with primary.connect() as conn:
                target = conn.scalar(text("SELECT pg_current_wal_insert_lsn()"))
            deadline = time.monotonic() + timeout
            with replica.connect() as conn:
                query = text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)")
                while not conn.scalar(query, {"lsn": target}):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"replica did not replay up to {target} in {timeout} s")
                    time.sleep(0.05)
                    conn.rollback()
        finally:
            primary.dispose()
            replica.dispose()

    def stop(self) -> None:
        self.replica.stop()
        self.primary.stop()
        shutil.rmtree(self.root, ignore_errors=True)
