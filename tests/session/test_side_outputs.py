"""A side output (`--angles` CSV, `--events` JSON lines) on a real full disk: a real 64 kB tmpfs,
a real `hiplevel sim` on a real pty and a real `hiplevel run` recording into a real SQLite file
elsewhere. The side output must be reported once, in words, and dropped; the recording must be
closed normally (session ended, last rep, set_summary and end stored, no WAL left) and the live
feedback must go on to the end of the set.

Mounting needs root (as `make test` runs here)."""
import sqlite3

import pytest

from tests.session.test_recording_faults import fill, tmpfs
from tests.support.simproc import Sim, run_host

pytestmark = [pytest.mark.root]


@pytest.fixture
def tiny_fs(tmp_path):
    with tmpfs(tmp_path / "tiny", "64k") as mnt:
        yield mnt


def run_with(db, *extra):
    with Sim("--drops", "6,6", "--speed", 8, "--seed", 4, "--bends", 0) as sim:
        return run_host("--serial", sim.port, "--headless", "--mute", "--calibration", "standing",
                        "--db", db, "--patient", "P-side", "--set-reps", 2, *extra)


def stored(db):
    c = sqlite3.connect(db)
    try:
        ended = c.execute("SELECT ended_utc FROM sessions").fetchall()
        kinds = [k for (k,) in c.execute("SELECT kind FROM events ORDER BY id")]
    finally:
        c.close()
    return ended, kinds


# the angle file fills the last 8 kB mid-set; the event log's few lines meet a disk already full
@pytest.mark.parametrize("option,name,leave", [("--angles", "the angle file", 8 * 1024),
                                               ("--events", "the event log", 0)])
def test_a_side_output_on_a_full_disk_is_dropped_and_the_recording_closes(tmp_path, tiny_fs, option, name, leave):
    fill(tiny_fs, leave_bytes=leave)
    db = tmp_path / "s.sqlite"
    r = run_with(db, option, tiny_fs / "side.out")
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert r.returncode == 0, out
    assert out.lower().count(f"{name} stopped") == 1, out  # said once, in words
    assert "the disk is full" in out
    assert "Reps: 2" in r.stdout, out  # the live feedback went on to the end
    assert "Recorded as session 1" in r.stdout, out
    ended, kinds = stored(db)
    assert ended[0][0] is not None  # closed normally, not "interrupted"
    assert kinds.count("rep") == 2 and "set_summary" in kinds and kinds[-1] == "end"
    assert not (tmp_path / "s.sqlite-wal").exists()
