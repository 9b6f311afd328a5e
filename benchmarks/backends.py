"""The two databases under test: a throw-away SQLite file and a throw-away PostgreSQL database.

Each backend knows the environment that points cxloop at it, and talks to it directly (not
through Django) for row counts, emptying the table between phases and the raw references.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import psutil
import psycopg

from .cpu import cpu_seconds
from .data import COLUMNS, TABLE

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
# Variables of the developer's shell that would point cxloop elsewhere.
STRIPPED_ENV = ("DATABASE_URL", "CELERY_BROKER_URL", "API_MAX_BODY_BYTES", "DJANGO_SETTINGS_MODULE")


def pg_admin_url(dbname: str = "postgres") -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


def pg_available() -> str | None:
    """The server's version, or None when PostgreSQL cannot be reached."""
    try:
        with psycopg.connect(pg_admin_url(), connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"
    except psycopg.Error:
        return None


class Backend:
    name = ""
    # Where the subprocesses keep their bytecode. A deployment has its .pyc files; without them
    # (PYTHONDONTWRITEBYTECODE is set in some sandboxes) every ``cxloop`` command would spend
    # seconds compiling, which is not what the benchmark is about. Set by ``run.main``.
    pycache: ClassVar[Path | None] = None

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"cxloop-bench-{self.name}-"))
        self.secret_key = secrets.token_urlsafe(50)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
        env.update(
            DJANGO_SETTINGS_MODULE="cxloop.settings",
            SECRET_KEY=self.secret_key,
            DEBUG="false",
            ALLOWED_HOSTS="127.0.0.1",
            CXLOOP_VAR_DIR=str(self.tmp / "var"),
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        if self.pycache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        return env

    def create(self) -> None:
        raise NotImplementedError

    def destroy(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def count(self, workspace_id: int) -> int:
        raise NotImplementedError

    def empty(self) -> None:
        """Empty the interactions table: each throughput phase starts from the same state."""
        raise NotImplementedError

    def settle(self) -> None:
        """Write out what earlier phases left behind (dirty pages, the WAL), so that the next
        phase does not pay for the previous one's checkpoint."""

    def analyze(self) -> None:
        """Refresh planner statistics after seeding, as autovacuum would a little later.

        SQLite gets nothing: cxloop never runs ANALYZE there, so neither does the benchmark.
        """


class Postgres(Backend):
    name = "postgres"

    def __init__(self) -> None:
        super().__init__()
        self.dbname = f"cxloop_bench_{os.getpid()}"
        self.created = False

    def url(self) -> str:
        return pg_admin_url(self.dbname)

    def env(self) -> dict[str, str]:
        return super().env() | {"DATABASE_URL": self.url()}

    def create(self) -> None:
        with psycopg.connect(pg_admin_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}"')
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        self.created = True

    def destroy(self) -> None:
        try:
            if self.created:
                with psycopg.connect(pg_admin_url(), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
                self.created = False
        finally:
            super().destroy()

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(), connect_timeout=5)

    def count(self, workspace_id: int) -> int:
        with self.connect() as conn:
            row = conn.execute(
                f"SELECT count(*) FROM {TABLE} WHERE workspace_id = %s", (workspace_id,)
            ).fetchone()
            return int(row[0]) if row else 0

    def empty(self) -> None:
        with self.connect() as conn:
            conn.execute(f"TRUNCATE {TABLE} RESTART IDENTITY CASCADE")
        self.settle()

    def settle(self) -> None:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute("CHECKPOINT")

    def analyze(self) -> None:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute("VACUUM ANALYZE")

    def copy(self, payload: bytes) -> tuple[float, float]:
        """Seconds to COPY ``payload`` (text format) into the table and commit, and the CPU
        seconds the server process spent on it."""
        chunk = 1 << 20
        with self.connect() as conn:
            server = psutil.Process(conn.info.backend_pid)
            cpu = cpu_seconds(server)
            started = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY {TABLE} ({','.join(COLUMNS)}) FROM STDIN") as copy,
            ):
                for start in range(0, len(payload), chunk):
                    copy.write(payload[start : start + chunk])
            conn.commit()
            seconds = time.perf_counter() - started
            return seconds, cpu_seconds(server) - cpu


class Sqlite(Backend):
    name = "sqlite"

    @property
    def path(self) -> Path:
        # The embedded setup: no DATABASE_URL, the file lives in CXLOOP_VAR_DIR.
        return self.tmp / "var" / "cxloop.sqlite3"

    def create(self) -> None:
        (self.tmp / "var").mkdir(parents=True, exist_ok=True)

    def connect(self) -> sqlite3.Connection:
        # The same pragmas as cxloop's settings, and foreign keys checked as Django does.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def count(self, workspace_id: int) -> int:
        conn = self.connect()
        try:
            row = conn.execute(
                f"SELECT count(*) FROM {TABLE} WHERE workspace_id = ?", (workspace_id,)
            ).fetchone()
            return int(row[0]) if row else 0
        finally:
            conn.close()

    def empty(self) -> None:
        conn = self.connect()
        try:
            conn.execute(f"DELETE FROM {TABLE}")
            conn.execute("VACUUM")
        finally:
            conn.close()
        self.settle()

    def settle(self) -> None:
        conn = self.connect()
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def executemany(self, params: list[tuple[Any, ...]]) -> tuple[float, float]:
        """Seconds for one transaction of ``executemany`` INSERTs, committed, and its CPU
        seconds (SQLite works in this process)."""
        sql = f"INSERT INTO {TABLE} ({','.join(COLUMNS)}) VALUES ({','.join(['?'] * len(COLUMNS))})"
        conn = self.connect()
        try:
            cpu = time.process_time()
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, params)
            conn.execute("COMMIT")
            return time.perf_counter() - started, time.process_time() - cpu
        finally:
            conn.close()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
