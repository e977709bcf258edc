"""A real PostgreSQL server for the tests, from the system's packages (``scripts/setup --test`` installs them).

Each ``PostgresServer`` is its own cluster in a temporary folder, listening
on a free port on 127.0.0.1 only, with "trust" authentication for local
connections (the tests make their own accounts to check what each may see).
PostgreSQL refuses to run as root, so as root it runs as the ``postgres``
account the package creates.

Where no server is installed the tests that need one are skipped, saying
why, unless ``DOJOGUARD_REQUIRE_POSTGRES`` is set (``.ci/run`` sets it): then
they fail, so a CI machine without PostgreSQL cannot pass quietly.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

SUPERUSER = "dojoguard_admin"


def server_bin() -> Path | None:
    """The folder of initdb and pg_ctl: ``DOJOGUARD_PG_BIN``, else Debian's newest, else pg_config's."""
    if os.environ.get("DOJOGUARD_PG_BIN"):
        return Path(os.environ["DOJOGUARD_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_server() -> Path:
    folder = server_bin()
    if folder is None or not (folder / "initdb").exists():
        message = ("no PostgreSQL server is installed (initdb not found): run scripts/setup --test, "
                   "or set DOJOGUARD_PG_BIN to the folder holding initdb and pg_ctl")
        if os.environ.get("DOJOGUARD_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="dojoguard-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> "PostgresServer":
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = on\nmax_connections = 200\n"
                       "shared_buffers = 128MB\n")
        return self

    def start(self) -> "PostgresServer":
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def is_running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its DSN (the superuser's)."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def create_login(self, account: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{account}" LOGIN')

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def destroy(self) -> None:
        if self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def as_account(dsn: str, account: str) -> str:
    """``dsn`` (a test server's postgresql:// address) with another account's name (trust authentication)."""
    scheme, rest = dsn.split("://", 1)
    return f"{scheme}://{account}@{rest.split('@', 1)[1]}"


def wait_until_up(server: PostgresServer, timeout: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(server.dsn(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
