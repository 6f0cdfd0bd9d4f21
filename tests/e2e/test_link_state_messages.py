"""What the patient sees while there is no live angle, over the real BLE stack (`hiplevel sim --link
ble` on the virtual radio, `hiplevel run --ble` through bumble): a wrong sensor name says it is
connecting and then why it failed, never asking to "stand still" first; a dropout shows the link
state where the angle goes, not the last angle as if it were live."""
import subprocess

from tests.support.simproc import ROOT, SimProcess, hiplevel


def run_ble(*args, timeout=120):
    return subprocess.run(hiplevel("run", *args, "--calibration", "standing", "--headless", "--mute",
                                   "--no-record"), capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_a_wrong_ble_name_fails_without_asking_the_patient_to_stand_still():
    sim = SimProcess(["--link", "ble", "--drops", "6", "--bends", "0"], "ble", 2)
    _, hci = sim.where
    try:
        r = run_ble("--ble", "no-such-sensor", "--ble-hci", hci)
    finally:
        sim.proc.kill()
        sim.proc.wait(5)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "Stand still" not in r.stdout, r.stdout
    assert r.stdout.count("Connecting to the sensor") == 1, r.stdout  # said once, not once a second
    assert "no-such-sensor" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_dropout_shows_the_link_state_where_the_angle_goes():
    sim = SimProcess(["--link", "ble", "--drops", "3,8,4", "--bends", "0", "--speed", 1,
                      "--dropout-at", 5, "--dropout-for", 4], "ble", 2)
    name, hci = sim.where
    try:
        r = run_ble("--ble", name, "--ble-hci", hci)
    finally:
        sim.proc.kill()
        sim.proc.wait(5)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    down = [i for i, line in enumerate(lines) if "(no live angle)" in line]
    assert down, r.stdout
    assert all("°" not in lines[i] and "connection lost" in lines[i].lower() for i in down), r.stdout
    # the angle comes back after the reconnect
    assert any("°" in line and " reps " in line for line in lines[down[-1] + 1:]), r.stdout
