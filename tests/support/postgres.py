"""A PostgreSQL server the test owns (the machine's binaries): it can stop and restart it."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ops.migrate import upgrade
from tests.support.servers import free_port, in_thread, reachable, run_sql, with_database

# The server refuses to run as root; the packaged `postgres` account runs it when we are root.
SERVER_USER = "postgres"


def server_binaries() -> Path | None:
    """The directory holding initdb and postgres, if this machine has them."""
    found = shutil.which("pg_config")
    if found is not None:
        probe = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(probe.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


class OwnPostgres:
    """A postgres child process on a fixed TCP port with trust auth; started and stopped by pid."""

    def __init__(self, port: int, bindir: Path) -> None:
        self.port, self.bindir = port, bindir
        self.home = Path(tempfile.mkdtemp(prefix="ordertrail-own-pg-"))
        self.data = self.home / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self._user: str | None = SERVER_USER if os.geteuid() == 0 else None
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.home, entry.pw_uid, entry.pw_gid)

    @property
    def admin_url(self) -> str:
        """asyncpg URL of its `postgres` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        """Create the cluster (fsync off: the data is thrown away after the test)."""
        argv = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres"]
        argv += ["--auth=trust", "--no-sync", "-E", "UTF8"]
        subprocess.run(argv, user=self._user, capture_output=True, check=True)

    def start(self) -> None:
        """Start the server and wait until it accepts logins."""
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        argv += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
        argv += ["-c", "fsync=off", "-c", "max_connections=200"]
        log = (self.home / "server.log").open("ab")
        self.process = subprocess.Popen(argv, user=self._user, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not reachable(self.admin_url):
            assert self.process.poll() is None, (self.home / "server.log").read_text()
            assert time.monotonic() < deadline, "own PostgreSQL did not start"
            time.sleep(0.1)

    def stop(self, mode: signal.Signals = signal.SIGINT) -> None:
        """Stop it: SIGINT is PostgreSQL's fast shutdown (clients are disconnected at once)."""
        if self.process is None:
            return
        self.process.send_signal(mode)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def remove(self) -> None:
        """Stop it and delete its files."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def migrated_own_postgres() -> Iterator[tuple[OwnPostgres, str]]:
    """A PostgreSQL server of the caller's own with a migrated `ordertrail` database, and the
    database's SQLAlchemy URL; the server may be stopped and started again meanwhile."""
    bindir = server_binaries()
    assert bindir is not None, "PostgreSQL server binaries (initdb, postgres) are needed"
    server = OwnPostgres(free_port(), bindir)
    server.init()
    server.start()
    try:
        run_sql(server.admin_url, "CREATE DATABASE ordertrail")
        url = with_database(server.admin_url, "ordertrail").split("://")[1]
        url = "postgresql+asyncpg://" + url
        in_thread(lambda: upgrade(url))
        yield server, url
    finally:
        server.remove()
