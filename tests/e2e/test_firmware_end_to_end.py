"""The app against the simulator running the firmware core over a real pty: the chip's own rates
(104 and 208 Hz, its oscillator a few percent off), and a motion chip that stops answering, which
the app reports as one plain sentence."""
import json

import pytest

from firmware_sim.motion import Scenario
from tests.support.simproc import Sim, run_host


@pytest.mark.parametrize("rate, odr_error", [(104, "-2.5"), (208, "2.5")])
def test_a_set_at_the_chips_rates(tmp_path, monkeypatch, rate, odr_error):
    monkeypatch.setenv("HIPLEVEL_DB", str(tmp_path / "sessions.sqlite"))
    ev = tmp_path / "ev.jsonl"
    with Sim("--rate", rate, "--odr-error", odr_error, "--drops", "6,8", "--speed", 4,
             "--seed", 3) as sim:
        r = run_host("--serial", sim.port, "--headless", "--mute", "--events", ev)
    assert r.returncode == 0, r.stderr + r.stdout
    events = [json.loads(line) for line in open(ev)]
    end = events[-1]
    assert end["event"] == "end" and end["lost_samples"] == 0 and not end["frame_errors"]
    true_rate = rate * (1 + float(odr_error) / 100)
    duration = Scenario(drops_deg=[6.0, 8.0]).duration_s
    assert abs(end["samples"] - duration * true_rate) < 0.01 * duration * true_rate
    assert end["reps"] == 2
    # the device clock follows the chip's real rate: event time runs at true time, not nominal
    assert abs(end["t"] - duration) < 0.3


def test_a_motion_chip_that_does_not_answer_is_one_plain_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HIPLEVEL_DB", str(tmp_path / "sessions.sqlite"))
    ev = tmp_path / "ev.jsonl"
    with Sim("--imu-fault-at", 2, "--drops", "6,6,6", "--speed", 2, "--seed", 1) as sim:
        r = run_host("--serial", sim.port, "--headless", "--mute", "--events", ev)
    assert "Traceback" not in r.stderr
    out = r.stdout + r.stderr
    assert "Session ended: the sensor's motion chip does not answer." in out, out
    events = [json.loads(line) for line in open(ev)]
    faults = [e for e in events if e["event"] == "sensor_fault"]
    assert len(faults) == 1 and faults[0]["message"] == "The sensor's motion chip does not answer."
    assert events[-1]["event"] == "end" and events[-1]["reason"] == "the sensor's motion chip does not answer"


def test_run_rate_asks_the_firmware_for_another_of_the_chips_rates(tmp_path):
    from firmware_sim.firmware import core
    from host.protocol.frames import SENSOR_RATES_HZ
    assert SENSOR_RATES_HZ == core.RATES_HZ  # what `run --rate` offers is what the firmware has
    ev = tmp_path / "ev.jsonl"
    with Sim("--odr-error", "0", "--drops", "6", "--speed", 4, "--seed", 3) as sim:  # 208 Hz by default
        r = run_host("--serial", sim.port, "--headless", "--mute", "--no-record", "--events", ev,
                     "--rate", 52)
    assert r.returncode == 0, r.stderr + r.stdout
    end = [json.loads(line) for line in open(ev)][-1]
    duration = Scenario(drops_deg=[6.0]).duration_s
    assert end["event"] == "end" and end["lost_samples"] == 0 and end["reps"] == 1
    assert abs(end["samples"] - duration * 52) < 0.01 * duration * 52
