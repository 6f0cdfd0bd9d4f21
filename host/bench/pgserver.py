"""A private PostgreSQL server for the tests and `hiplevel bench clinic --postgres`: Debian's binaries (/usr/lib/postgresql/*/bin), a fresh
cluster made by initdb in a temporary folder, run as an unprivileged user (initdb refuses root; as
root the server runs as `nobody` through setpriv) on a free loopback port with password login.

In: `PgServer().start()`. Out: `.url(dbname)` for a database made by `.new_database()`, `.stop()` /
`.start()` again (the same cluster, e.g. to take the server away mid-recording), `.close()` to stop it
and delete the folder. No packet leaves loopback: the server listens on 127.0.0.1 only.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER, PASSWORD = "hiplevel", "test-secret"
UNPRIVILEGED_UID = 65534  # nobody


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self):
        self.bin = bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="hiplevel-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)
        self._as_user = []
        if os.geteuid() == 0:
            os.chown(self.folder, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
            self._as_user = ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}",
                             "--clear-groups"]
        pwfile = self.folder / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_user:
            os.chown(pwfile, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
        subprocess.run(self._as_user + [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER,
                                        f"--pwfile={pwfile}", "--auth=scram-sha-256", "--locale=C",
                                        "--encoding=UTF8"],
                       check=True, capture_output=True, cwd=self.folder)

    def start(self) -> "PgServer":
        # fsync off: the tests stop the server cleanly (a fast shutdown still writes everything)
        self.proc = subprocess.Popen(
            self._as_user + [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.folder}",
                             "-c", "fsync=off", "-c", "max_connections=60"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "server.log", "ab"), cwd=self.folder)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.admin().close()
                return self
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("PostgreSQL did not start: "
                                       + (self.folder / "server.log").read_text()[-2000:]) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): sessions are cut off, as when a clinic's server goes away."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, dbname: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{dbname}"

    def admin(self):
        import psycopg
        return psycopg.connect(self.url(), autocommit=True, connect_timeout=5)

    def new_database(self) -> str:
        """The URL of a new, empty database on this server."""
        name = f"t{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)
