"""`hiplevel bench gait`: synthetic trials in the IPOL compact format (made here from the walking
simulator, sampled like the IPOL sensor: 100 Hz, tilted 35 degrees), a damaged file, and a regression
check on a few real IPOL trials, which lives outside the repo (`<repo>/../shared/data/ipol_gait`, or
$HIPLEVEL_IPOL_DIR): that test skips, saying so, when the folder is absent."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.support.simproc import ROOT, hiplevel

IPOL_DIR = Path(os.environ.get("HIPLEVEL_IPOL_DIR") or ROOT.parent / "shared" / "data" / "ipol_gait")
G = 9.80665


def write_trial(path, gait="normal", turns=False, swap_sides=False, seed=0):
    from firmware_sim.device import SimDevice
    from firmware_sim.walking import WalkScenario
    sc = WalkScenario(gait=gait, turns=turns, steps=16, seed=seed)
    dev = SimDevice(sc, rate_hz=100, seed=seed, mount_yaw_deg=20.0, mount_tilt_deg=35.0)
    t = np.arange(0.0, sc.duration_s, 0.01)
    acc_g, gyr_dps = dev.imu_readings(t)
    rng = np.random.default_rng(seed)
    acc_g = acc_g + rng.normal(0, 0.003, acc_g.shape)
    gyr_dps = gyr_dps + rng.normal(0, 0.2, gyr_dps.shape) + rng.normal(0, 0.5, 3)
    feet = sc.feet + ["left" if sc.feet[-1] == "right" else "right"]
    if swap_sides:
        feet = ["left" if f == "right" else "right" for f in feet]
    steps = sc.steps_truth()
    turn = [(s["contact_s"], s["end_s"]) for s in steps if s["turning"]]
    walk_end = sc.contacts_s[-1] + 0.1
    walk = ([(sc.contacts_s[0] - 0.3, turn[0][0]), (turn[-1][1], walk_end)] if turn
            else [(sc.contacts_s[0] - 0.3, walk_end)])
    np.savez(path, rate_hz=100.0, acc_mps2=(acc_g * G).astype(np.float32),
             gyr_rads=np.radians(gyr_dps).astype(np.float32), ic_s=sc.contacts_s, ic_side=np.array(feet),
             walk_s=np.array(walk), turn_s=np.array(turn).reshape(-1, 2))


def bench(folder, *extra):
    return subprocess.run(hiplevel("bench", "gait", folder, *extra), capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_bench_scores_synthetic_trials_and_skips_a_broken_file(tmp_path):
    write_trial(tmp_path / "a_normal.npz", seed=1)
    write_trial(tmp_path / "b_trendelenburg_turns.npz", gait="trendelenburg", turns=True, seed=2)
    (tmp_path / "c_broken.npz").write_bytes(b"not a zip file")
    np.savez(tmp_path / "d_nokeys.npz", rate_hz=100.0)
    r = bench(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["trials"] == 2
    assert [s["name"] for s in out["skipped"]] == ["c_broken", "d_nokeys"]
    assert "cannot read it" in out["skipped"][0]["reason"]
    assert "missing key(s) acc_mps2, gyr_rads, ic_s, ic_side, walk_s" in out["skipped"][1]["reason"]
    assert "skipped c_broken" in r.stderr
    for key in ("f1", "precision", "recall", "right_foot_share", "median_timing_error_s"):
        assert key in out
    assert out["f1"] >= 0.95 and out["right_foot_share"] >= 0.97
    assert out["median_timing_error_s"] <= 0.03
    assert out["max_live_delay_s"] <= 0.3  # once calibrated, every contact is known within 0.3 s
    assert out["turn_contacts"] >= 2 and out["turn_steps"] >= 2  # the U-turn was seen and made no steps
    assert {row["trial"] for row in out["rows"]} == {"a_normal", "b_trendelenburg_turns"}


def test_bench_catches_swapped_feet_and_writes_docs(tmp_path):
    write_trial(tmp_path / "swapped.npz", swap_sides=True, seed=3)
    doc = tmp_path / "gait.md"
    r = bench(tmp_path, "--json", "--write-docs", doc)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # the contacts are found, but every foot disagrees with the (deliberately swapped) reference
    assert out["f1_any_foot"] >= 0.95 and out["right_foot_share"] <= 0.05 and out["f1"] <= 0.1
    text = doc.read_text()
    assert "## Live step detection on real walking" in text and "| swapped |" in text


def test_bench_refuses_a_folder_without_trials(tmp_path):
    r = bench(tmp_path)
    assert r.returncode != 0 and "holds no .npz trials" in r.stderr and "Traceback" not in r.stderr


REAL = ("ipol_1-1", "ipol_12-3", "ipol_7-2")


@pytest.mark.skipif(not IPOL_DIR.is_dir(), reason=f"the IPOL walking trials are not at {IPOL_DIR} "
                                                  "(set HIPLEVEL_IPOL_DIR)")
def test_real_trials_regression(tmp_path):
    for name in REAL:
        (tmp_path / f"{name}.npz").symlink_to(IPOL_DIR / f"{name}.npz")
    r = bench(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = {row["trial"]: row for row in out["rows"]}
    # measured when docs/gait.md was written (same-foot F1 per trial); a regression loses more than 0.05
    expected = {"ipol_1-1": EXPECTED_F1[0], "ipol_12-3": EXPECTED_F1[1], "ipol_7-2": EXPECTED_F1[2]}
    for name, f1 in expected.items():
        assert rows[name]["f1"] >= f1 - 0.05, rows[name]
    assert out["median_timing_error_s"] <= 0.03


EXPECTED_F1 = (0.88, 0.62, 0.60)
