"""Shared test set-up. The project is installed (editable) and tests/ is a package, so tests
import `host`, `firmware_sim` and `tests.support` by their full names; nothing edits sys.path.

Markers say what a test needs, so a fast loop can leave the slow or privileged ones out
(`pytest -m "not e2e"`, `-m "not sound and not display"`):
- e2e: runs the app and the simulator as processes over a real link (every test in tests/e2e/).
- display: draws real Qt widgets (tests/gui/; offscreen or under Xvfb).
- sound: needs the private PulseAudio server (tests/sinks/test_audio.py, the latency bench).
- root: mounts file systems (tests/session/test_recording_faults.py).
- slow: runs a simulated scenario in real time or longer.
Folder-wide markers are set here; a module that needs more says so with `pytestmark`.
"""
import os
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FOLDER_MARKERS = {"e2e": ("e2e",), "gui": ("display",)}

# Every `hiplevel run` in the tests records (recording is on by default): keep those sessions out
# of the user's own database.
os.environ.setdefault("HIPLEVEL_DB", os.path.join(tempfile.mkdtemp(prefix="hiplevel-test-db-"),
                                                  "sessions.sqlite"))
os.environ.setdefault("HIPLEVEL_SPOOL", tempfile.mkdtemp(prefix="hiplevel-test-spool-"))
# and unpaired, whatever this machine's own installation is paired with (tests that pair set their own)
os.environ["HIPLEVEL_PAIRING"] = os.path.join(tempfile.mkdtemp(prefix="hiplevel-test-pairing-"), "pairing.json")


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = Path(item.fspath).resolve().relative_to(TESTS).parts[0]
        for name in FOLDER_MARKERS.get(folder, ()):
            item.add_marker(getattr(pytest.mark, name))


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the whole run (tests/support/pgserver.py); skipped only when
    PostgreSQL is not installed (`make test` installs it)."""
    from tests.support.pgserver import PgServer, bin_dir
    if bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin; `make test` installs it)")
    server = PgServer().start()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A session database that does not exist yet, on each backend: an SQLite file path, or the URL
    of a new empty database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "s.sqlite"
    return request.getfixturevalue("pg_server").new_database()
