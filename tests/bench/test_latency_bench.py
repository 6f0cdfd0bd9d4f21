"""`hiplevel bench latency`: the cue latency benchmark through a real PulseAudio server.

The bench runs as its own process (it starts and stops its own private sound server), with few
cues so the test stays short. What is checked is that the measurement is whole and sane — every
cue found in the recording, the right sound matched, times in causal order, the JSON and docs
structure — never how fast it was: speed is what the bench prints, not what a test asserts.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sound]

from host.bench.latency import RATE_HZ, frame_of_event, scripted_frames
from host.protocol.frames import DataFrame, FrameType, Command, decode_frame
from host.links.base import TransportError
from host.links.memory import MemoryTransport

ROOT = Path(__file__).resolve().parents[2]
CUES = 10
OTHER_SECTIONS = ("# Performance\n\n## Host pipeline cost\n\nwritten by another bench\n\n"
                  "## Cue latency\n\nan old result that must go\n\n## Frame rate\n\nalso kept\n")


def hiplevel(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    return subprocess.run([sys.executable, "-m", "host.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# -- pieces --------------------------------------------------------------------------------------
def test_memory_transport_hands_frames_over_on_schedule_and_stamps_arrival():
    frames = [(0.0, b"a"), (0.05, b"b"), (0.05, b"c"), (0.12, b"d")]
    t = MemoryTransport(frames)
    seen_events = []
    t.on_event = lambda kind, **f: seen_events.append(kind)

    async def go():
        with pytest.raises(TransportError):
            await t.read()  # not opened yet
        t_open = time.monotonic()
        await t.open()
        got = []
        while (item := await t.read()) is not None:
            got.append((item, t.current_index))
        await t.send(b"cmd")
        await t.close()
        return t_open, got

    t_open, got = asyncio.run(go())
    assert [f for (_, f), _ in got] == [b"a", b"b", b"c", b"d"]
    assert [i for _, i in got] == [0, 1, 2, 3]
    stamps = [ts for (ts, _), _ in got]
    assert stamps == t.arrival_host_s
    # never before its due time; stamps are the hand-over moments, in order
    for (due, _), ts in zip(frames, stamps):
        assert ts >= t_open + due
    assert stamps == sorted(stamps)
    assert all(x >= 0 for x in t.late_s) and len(t.late_s) == 4
    assert t.lost_reason == "the in-memory frames ran out"
    assert t.sent == [b"cmd"] and seen_events == ["connected"]
    with pytest.raises(ValueError):
        MemoryTransport([(0.1, b"x"), (0.05, b"y")])


def test_event_time_maps_to_the_frame_carrying_that_sample():
    sf = scripted_frames(cues=1, drop_deg=8.0, rep_s=1.2, seed=3, jitter_s=0.01)
    kinds = [type(decode_frame(f)).__name__ for _, f in sf.frames]
    assert kinds[0] == "InfoFrame" and kinds[-1] == "Command"
    assert decode_frame(sf.frames[-1][1]) == Command(FrameType.CMD_STOP)
    dues = [d for d, _ in sf.frames]
    assert dues == sorted(dues)
    t0 = int(sf.first_us[0])
    period_s = 1.0 / RATE_HZ
    for j in (0, 1, 57, len(sf.index) - 1):
        frame = decode_frame(sf.frames[sf.index[j]][1])
        assert isinstance(frame, DataFrame) and frame.t_device_us == sf.first_us[j]
        for k in range(len(frame.acc_raw)):
            t_event = round((frame.t_device_us - t0) * 1e-6 + k * period_s, 4)
            assert frame_of_event(sf, t_event, t0) == sf.index[j]
    after_end = (sf.first_us[-1] - t0) * 1e-6 + 10 * period_s
    assert frame_of_event(sf, after_end, t0) is None
    assert frame_of_event(sf, -1.0, t0) is None


def test_bad_settings_are_plain_sentences():
    for args, words in ((["--cues", "0"], "must be at least 1"),
                        (["--drop", "5.5", "--threshold", "5"], "must pass the threshold"),
                        (["--latency", "fast"], "give low, high or seconds"),
                        (["--server", "unix:/nonexistent/hiplevel/native"], "no PulseAudio or PipeWire server answers")):
        r = hiplevel("bench", "latency", *args, timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert words in r.stderr and "Traceback" not in r.stderr


# -- the whole bench -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    docs = tmp_path_factory.mktemp("docs") / "performance.md"
    docs.write_text(OTHER_SECTIONS)
    r = hiplevel("bench", "latency", "--cues", str(CUES), "--rep-s", "0.8", "--json",
                 "--write-docs", str(docs))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout), docs.read_text()


def test_every_cue_is_found_with_its_own_sound(bench):
    res, _ = bench
    assert [row["exercise"] for row in res["rows"]] == ["keep-level", "hip-dip"]
    for row in res["rows"]:
        assert row["cues"] == CUES, row["exercise"]
        assert row["onsets_found"] == CUES
        assert row["cues_without_onset"] == 0
        assert row["cues_without_player_note"] == 0
        assert row["bursts_without_cue"] == 0
        assert row["frame_mismatches"] == 0
        assert isinstance(row["underflows"], int) and row["underflows"] >= 0
        assert len(row["per_cue"]) == CUES
    fault, chime = res["rows"]
    # The matched sound is the one the exercise plays: the fault tone starts at 660 Hz (at the
    # threshold) and rises with the excess; the chime's first note is G4 (392 Hz).
    for c in fault["per_cue"]:
        assert c["kind"] == "fault" and 650.0 < c["onset_hz"] < 1330.0
    for c in chime["per_cue"]:
        assert c["kind"] == "target" and abs(c["onset_hz"] - 392.0) < 5.0


def test_times_are_positive_finite_and_in_causal_order(bench):
    res, _ = bench
    for row in res["rows"]:
        s = row["latency_ms"]
        assert s["n"] == CUES
        assert all(math.isfinite(s[k]) and s[k] > 0 for k in ("p50", "p95", "max"))
        assert s["p50"] <= s["p95"] <= s["max"]
        for stage in ("pipeline", "callback_wait", "output"):
            st = row["stages_ms"][stage]
            assert st["n"] == CUES and st["p50"] <= st["p95"] <= st["max"]
        cues = row["per_cue"]
        assert [c["t_device_s"] for c in cues] == sorted(c["t_device_s"] for c in cues)
        assert [c["frame_index"] for c in cues] == sorted({c["frame_index"] for c in cues})
        for c in cues:
            # the cue call comes after the frame arrived; the recording hears it after the
            # callback wrote it. (The callback's clock reading may precede the call by a hair:
            # it is read before the callback looks at the command.)
            assert c["arrival_host_s"] <= c["requested_host_s"]
            assert c["requested_host_s"] - c["callback_host_s"] < 0.001
            assert c["callback_host_s"] < c["onset_host_s"]
            assert c["arrival_host_s"] < c["onset_host_s"]
        # consecutive cues are a rep apart, not two sounds of one cue
        gaps = [b["onset_host_s"] - a["onset_host_s"] for a, b in zip(cues, cues[1:])]
        assert min(gaps) > 0.4


def test_json_settings_and_docs_section(bench):
    res, text = bench
    s = res["settings"]
    assert s["blocksize"] == 480 and s["samplerate_hz"] == 48000 and s["cues_scripted"] == CUES
    assert s["server"] == "private null sink" and s["monitor"] == "cue.monitor"
    assert s["output_latency_ms"] > 0 and res["target_p95_ms"] == 50.0
    # only our section was replaced; the others are untouched
    assert "## Host pipeline cost\n\nwritten by another bench\n" in text
    assert "## Frame rate\n\nalso kept\n" in text
    assert "an old result that must go" not in text
    assert text.count("## Cue latency") == 1
    section = text.split("## Cue latency", 1)[1].split("\n## ", 1)[0]
    assert f"`hiplevel bench latency --cues {CUES} --rep-s 0.8 --write-docs " in section
    assert "blocksize 480" in section
    assert "| cue | cues | p50 ms | p95 ms | max ms | p95 under 50 ms |" in section
    for row in res["rows"]:
        lat = row["latency_ms"]
        assert (f"| {row['cue']} (`{row['exercise']}`) | {CUES} | {lat['p50']:.1f} | "
                f"{lat['p95']:.1f} | {lat['max']:.1f} |") in section


def test_speech_run_finds_every_cue_under_the_voice_and_writes_its_own_section(tmp_path):
    """--speech: spoken prompts play through the cue player's stream the whole time; every cue is
    still found (in left minus right, where the centred voice cancels), many of them start while a
    phrase plays, and the result goes into its own docs section beside the plain one."""
    docs = tmp_path / "performance.md"
    docs.write_text(OTHER_SECTIONS)
    r = hiplevel("bench", "latency", "--exercise", "keep-level", "--cues", str(CUES), "--rep-s", "0.8",
                 "--speech", "--json", "--write-docs", str(docs))
    assert r.returncode == 0, r.stdout + r.stderr
    (row,) = json.loads(r.stdout)["rows"]
    assert row["onsets_found"] == CUES and row["cues_without_onset"] == 0 and row["bursts_without_cue"] == 0
    assert row["phrases_spoken"] >= 2
    assert 0.3 <= row["speech_overlap"] <= 1.0   # the voice was really playing when cues started
    text = docs.read_text()
    assert "## Cue latency while spoken prompts play\n" in text
    assert "an old result that must go" in text   # the plain run's section is not this run's
    section = text.split("## Cue latency while spoken prompts play", 1)[1].split("\n## ", 1)[0]
    assert "--speech" in section and "% of the cues started while a phrase was playing" in section
