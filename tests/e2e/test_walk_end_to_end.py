"""Walking end to end: the simulated walking pelvis (a real `hiplevel sim` process) over the pty, and
once over BLE, into a real `hiplevel run --exercise walk` process; every step it reports is checked
against the simulator's per-step truth (`--truth FILE` writes FILE.steps.csv)."""
import csv
import json

import pytest
from tests.support.simproc import SimProcess, Sim, run_host

THRESHOLD_DEG = 6.5


def check_walk(events, truth_rows):
    truth = [dict(r, contact_s=float(r["contact_s"]), drop_deg=float(r["drop_deg"]),
                  turning=r["turning"] == "1") for r in truth_rows]
    steps = [e for e in events if e["event"] == "step"]
    cues = [e for e in events if e["event"] == "cue_on"]
    assert [e for e in events if e["event"] == "calibrated"][0]["method"] == "walk"
    matched = {}
    for s in steps:
        j = min(range(len(truth)), key=lambda j: abs(truth[j]["contact_s"] - s["contact_t"]))
        tr = truth[j]
        assert abs(tr["contact_s"] - s["contact_t"]) < 0.1, f"step {s} matches no true contact"
        assert not tr["turning"], f"a step was reported during a turn: {s}"
        assert j not in matched
        matched[j] = s
        assert s["foot"] == tr["foot"], (s, tr)
        assert s["drop_deg"] == pytest.approx(tr["drop_deg"], abs=1.0), (s, tr)
        assert s["cued"] == (tr["drop_deg"] > THRESHOLD_DEG), (s, tr)
    straight = [j for j, tr in enumerate(truth) if not tr["turning"]]
    assert len(matched) >= 0.9 * len(straight), f"only {len(matched)} of {len(straight)} steps found"
    cued_steps = {s["index"] for s in steps if s["cued"]}
    assert {c["step"] for c in cues} == cued_steps
    assert all(c["low_side"] == next(s["swing_side"] for s in steps if s["index"] == c["step"]) for c in cues)
    summary = [e for e in events if e["event"] == "walk_summary"]
    assert len(summary) == 1 and summary[0]["steps"] == len(steps)
    return steps, summary[0]


CASES = {
    "normal": ("--gait", "normal", "--seed", 3),
    "trendelenburg-right-turns-loss": ("--gait", "trendelenburg", "--weak-side", "right", "--turns",
                                       "--loss", 0.05, "--seed", 4),
    "trendelenburg-left": ("--gait", "trendelenburg", "--weak-side", "left", "--mount-yaw", 30, "--seed", 5),
    "compensated-turns-loss": ("--gait", "compensated", "--turns", "--loss", 0.05, "--seed", 6),
}


@pytest.mark.parametrize("case", CASES)
def test_walk_over_the_serial_link(tmp_path, case):
    ev, truth = tmp_path / "ev.jsonl", tmp_path / "truth.csv"
    with Sim("--exercise", "walk", *CASES[case], "--steps", 20, "--speed", 4, "--truth", truth) as sim:
        r = run_host("--serial", sim.port, "--exercise", "walk", "--headless", "--mute", "--no-record",
                     "--events", ev)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in open(ev)]
    steps, summary = check_walk(events, list(csv.DictReader(open(str(truth) + ".steps.csv"))))
    if case.startswith("trendelenburg"):
        weak = CASES[case][3]
        dropping = "left" if weak == "right" else "right"
        # the side opposite the weak hip drops 8-12 degrees while it swings; the other side is normal
        assert summary[f"{dropping}_drop_median_deg"] > 8 and summary[f"{weak}_drop_median_deg"] < 6
        assert all(s["swing_side"] == dropping for s in steps if s["cued"])
    else:
        assert not any(s["cued"] for s in steps)
    if "turns" in case:
        assert summary["turn_steps"] >= 3
    assert "steps" in r.stdout  # the console prints each step


def test_walk_over_ble(tmp_path):
    ev, truth = tmp_path / "ev.jsonl", tmp_path / "truth.csv"
    # twice real time: at 3x the simulator's per-sample truth rows (since it runs the firmware core)
    # starve its BLE loop on a loaded machine, and the link drops
    with SimProcess(["--link", "ble", "--exercise", "walk", "--gait", "trendelenburg", "--steps", 16,
                     "--speed", 2, "--seed", 7, "--truth", truth], "ble", 2) as sim:
        name, hci = sim.where
        r = run_host("--ble", name, "--ble-hci", hci, "--exercise", "walk", "--headless", "--mute",
                     "--no-record", "--events", ev)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in open(ev)]
    steps, _ = check_walk(events, list(csv.DictReader(open(str(truth) + ".steps.csv"))))
    assert any(s["cued"] for s in steps)
