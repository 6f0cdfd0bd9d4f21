"""A wrong serial port gets one sentence, and it is the only thing said: real paths (/dev/null, a
folder, a regular file, a missing one) given to a real `hiplevel run` process, which would otherwise
have opened the sound output and looked for a display first. And damaged packets on a real pty
(`hiplevel sim --corrupt`) are counted in the console view instead of warnings between its lines."""
import subprocess

import pytest

from tests.support.simproc import ROOT, Sim, hiplevel, run_host


@pytest.mark.parametrize("kind,words", [
    ("null", "is not a serial port (it takes no serial settings); give the sensor's port"),
    ("folder", "is a folder, not a serial port; give the sensor's port"),
    ("file", "is a file, not a serial port; give the sensor's port"),
    ("missing", "does not exist. Is the sensor plugged in"),
])
def test_a_wrong_port_is_the_one_thing_said(tmp_path, kind, words):
    port = {"null": "/dev/null", "folder": tmp_path, "file": tmp_path / "notes.txt",
            "missing": tmp_path / "ttyACM9"}[kind]
    (tmp_path / "notes.txt").write_text("not a port")
    # no --headless, no --mute: the window and the sound would be tried if the port were not first
    r = subprocess.run(hiplevel("run", "--serial", port, "--no-record"), capture_output=True, text=True,
                       cwd=ROOT, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2
    assert r.stdout == "", r.stdout
    (line,) = r.stderr.strip().splitlines()  # one line: no sound / display notes before it, no traceback
    assert line.startswith("hiplevel run: ") and words in line and str(port) in line
    assert "Errno" not in line and "ioctl" not in line


def test_damaged_packets_are_counted_in_the_console_view_not_printed_between_its_lines():
    with Sim("--drops", "6,6", "--speed", 2, "--seed", 4, "--bends", 0, "--corrupt", 0.05) as sim:
        r = run_host("--serial", sim.port, "--headless", "--mute", "--no-record", "--calibration", "standing")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dropped a packet" not in r.stderr and "skipped a frame" not in r.stderr, r.stderr
    damaged = [line for line in r.stdout.splitlines() if "damaged " in line and " s  " in line]
    assert damaged, r.stdout
    last = int(damaged[-1].rsplit("damaged ", 1)[1].split()[0])
    total = int(r.stdout.split("damaged frames skipped: ")[1].split(".")[0])
    assert 0 < last <= total  # the view's count is the summary's, as far as the view got
