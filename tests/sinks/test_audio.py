"""Cue tones through a real PulseAudio server: played by CuePlayer (PortAudio -> ALSA -> pulse
plugin), recorded from the null sink's monitor with parec, and analysed with host.bench.audio_capture.

The server is our own (host.sinks.sound_server.PulseServer), started for this module and stopped after it;
nothing here needs a sound server or sound card to be present beforehand.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.sound]

from host.bench import audio_capture as capture
from host.sinks import sound_server as pulse
from host.sinks.audio import AudioUnavailable, CuePlayer, fault_pitch_hz, make_chime, pan_gains

FS = 48000
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server():
    srv = pulse.PulseServer().start()
    srv.activate()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def module_player(server):
    # "pulse" is the ALSA pcm of libasound2-plugins; with PULSE_SERVER set it reaches our server
    # whatever else (a desktop's PipeWire) runs on the machine. host.sinks.audio was imported (and
    # PortAudio scanned devices) before the server existed: start() must cope with that.
    p = CuePlayer(device="pulse")
    p.start()
    yield p
    p.close()


@pytest.fixture
def player(module_player):
    p = module_player
    p.set_fault(False)
    p.set_muted(False)
    p.set_volume(0.6)
    time.sleep(0.05)  # let a previous test's fade-out finish
    yield p
    p.set_fault(False)


def record(server, actions, tail_s=0.15):
    """Record while `actions()` runs; returns (Recording, whatever actions returned)."""
    rec = capture.capture(server)
    try:
        time.sleep(0.1)
        result = actions()
        time.sleep(tail_s)
    except BaseException:
        rec.stop()
        raise
    return rec.stop(), result


def record_clean(server, actions, tries=3):
    """Record like `record`, again (up to `tries` times) while the recording has dropouts.

    A click or gap our synthesis makes recurs on every try and fails the test; an underrun from a
    starved 2-core CI machine (CPU-bound tests elsewhere, ~12 ms gaps at random points) seldom
    recurs three times. Returns (Recording, result, dropouts of the last try's single burst)."""
    for attempt in range(tries):
        rec, result = record(server, actions)
        b = single_burst(rec)
        drops = capture.find_dropouts(rec.samples[b.start: b.end])
        if not drops:
            break
        print(f"try {attempt + 1}: {len(drops)} dropouts, first at frame {drops[0].frame}")
    return rec, result, drops


def single_burst(recording):
    found = capture.bursts(recording.samples)
    assert len(found) == 1, f"expected one tone burst, found {[(b.start, b.end) for b in found]}"
    return found[0]


# -- analysis helpers on made-up signals: prove the checks below can fail ----------------------
def test_analysis_helpers_detect_what_they_claim():
    t = np.arange(int(0.5 * FS)) / FS
    tone = 0.3 * np.sin(2 * np.pi * 1000.3 * t)
    x = np.zeros((len(t) + FS // 2, 2))
    x[FS // 4: FS // 4 + len(t), 1] = tone
    b = capture.bursts(x)
    assert len(b) == 1
    assert abs(b[0].start - FS // 4) <= 2 and abs(b[0].end - (FS // 4 + len(t))) <= 2
    seg = x[b[0].start: b[0].end]
    assert abs(capture.dominant_frequency_hz(seg) - 1000.3) < 0.2
    assert capture.balance(seg) == pytest.approx(1.0)
    assert capture.find_dropouts(seg) == []
    gappy = seg.copy()
    gappy[12000:12240] = 0.0  # a 5 ms hole, as an underrun leaves
    kinds = {d.kind for d in capture.find_dropouts(gappy)}
    assert kinds == {"gap", "click"}
    jumpy = seg.copy()
    jumpy[15000:, 1] = 0.3 * np.sin(2 * np.pi * 1000.3 * t[15000 + 1: len(seg) + 1] + 2.0)
    assert [d.kind for d in capture.find_dropouts(jumpy)] == ["click"]


def test_fault_pitch_mapping():
    assert fault_pitch_hz(0.0) == 660.0
    assert fault_pitch_hz(5.0) == pytest.approx(1320.0)
    assert fault_pitch_hz(2.5) == pytest.approx(660.0 * math.sqrt(2))
    assert fault_pitch_hz(-3.0) == 660.0 and fault_pitch_hz(float("nan")) == 660.0
    assert fault_pitch_hz(40.0) == pytest.approx(1320.0)
    steps = [fault_pitch_hz(e) for e in np.linspace(0, 5, 11)]
    assert all(b > a for a, b in zip(steps, steps[1:]))
    assert pan_gains(-1.0) == pytest.approx((1.0, 0.0), abs=1e-12)
    left, right = pan_gains(0.0)
    assert left == pytest.approx(right) and left**2 + right**2 == pytest.approx(1.0)


# -- the real thing ------------------------------------------------------------------------------
def test_fault_tone_frequency_length_pan_no_dropouts(server, player):
    def actions():
        t_on = time.monotonic()
        player.set_fault(True, 880.0, pan=1.0)
        time.sleep(0.5)
        t_off = time.monotonic()
        player.set_fault(False)
        return t_on, t_off

    rec, (t_on, t_off), drops = record_clean(server, actions)
    assert drops == []
    b = single_burst(rec)
    seg = rec.samples[b.start: b.end]
    assert abs(capture.dominant_frequency_hz(seg) - 880.0) < 2.0
    # Start and stop both land on 10 ms block boundaries; the fade-out adds 8 ms.
    assert abs(b.length_s() - (t_off - t_on)) < 0.020
    left, right = capture.channel_rms(seg)
    assert right > 0.05 and left < 0.01 * right
    # The recording's clock map must put the onset after the call that asked for it, and the
    # player's own note of the onset in between.
    onset_host = rec.host_time_of_frame(b.start)
    assert t_on < player.last_onset_monotonic < onset_host < t_on + 0.5
    assert player.last_onset.kind == "fault"


def test_target_chime_left_and_unlike_fault(server, player):
    rec_fault, _ = record(server, lambda: (player.set_fault(True, 660.0), time.sleep(0.3),
                                          player.set_fault(False)))
    rec, _ = record(server, lambda: (player.play_target(pan=-1.0), time.sleep(0.3)))
    b = single_burst(rec)
    seg = rec.samples[b.start: b.end]
    assert b.length_s() == pytest.approx(0.27, abs=0.02)
    left, right = capture.channel_rms(seg)
    assert left > 0.02 and right < 0.01 * left
    # Two rising notes: G4 alone first, C5 after.
    assert abs(capture.dominant_frequency_hz(seg[: int(0.1 * FS)]) - 392.0) < 2.0
    assert abs(capture.dominant_frequency_hz(seg[int(0.15 * FS):]) - 523.25) < 2.0
    # Unlike the fault tone: their spectra (50 Hz bands up to 5 kHz) barely overlap.
    def bands(x):
        mag = np.abs(np.fft.rfft(x.sum(axis=1), FS))[:5000]
        return np.sqrt((mag.reshape(100, 50) ** 2).sum(axis=1))
    fb = single_burst(rec_fault)
    fault_bands = bands(rec_fault.samples[fb.start: fb.end])
    chime_bands = bands(seg)
    cosine = fault_bands @ chime_bands / np.linalg.norm(fault_bands) / np.linalg.norm(chime_bands)
    assert cosine < 0.1
    # No dropouts: the recording is the chime sample for sample (aligned by cross-correlation).
    expected = make_chime() * 0.45 * 0.6  # chime peak amplitude x volume, left gain 1 at pan -1
    lo = b.start - 200
    corr = np.correlate(rec.samples[lo: b.end + 200, 0], expected[:2000], mode="valid")
    start = lo + int(np.argmax(corr))
    got = rec.samples[start: start + len(expected), 0]
    assert np.sqrt(np.mean((got - expected) ** 2)) < 0.01 * np.sqrt(np.mean(expected ** 2))
    assert player.last_onset.kind == "target"


def test_pitch_and_pan_change_while_on_glide_without_clicks(server, player):
    def actions():
        player.set_fault(True, 660.0, pan=-0.5)
        time.sleep(0.4)
        player.set_fault(True, 990.0, pan=0.5)
        time.sleep(0.4)
        player.set_fault(False)

    rec, _, drops = record_clean(server, actions)
    assert drops == []
    b = single_burst(rec)  # one continuous tone, not two
    seg = rec.samples[b.start: b.end]
    first, second = seg[int(0.05 * FS): int(0.35 * FS)], seg[-int(0.3 * FS):-int(0.05 * FS)]
    assert abs(capture.dominant_frequency_hz(first) - 660.0) < 2.0
    assert abs(capture.dominant_frequency_hz(second) - 990.0) < 2.0
    assert capture.balance(first) < -0.3 and capture.balance(second) > 0.3


def test_mute_gives_silence_and_unmute_brings_tone_back(server, player):
    player.set_muted(True)
    before = player.last_onset

    def muted_actions():
        player.set_fault(True, 660.0)
        player.play_target()
        time.sleep(0.4)

    rec, _ = record(server, muted_actions)
    assert float(np.abs(rec.samples).max()) == 0.0
    assert player.last_onset == before  # a muted cue is not an onset

    def unmute():
        player.set_muted(False)
        time.sleep(0.3)
        player.set_fault(False)

    rec2, _ = record(server, unmute)
    b = single_burst(rec2)
    assert abs(capture.dominant_frequency_hz(rec2.samples[b.start: b.end]) - 660.0) < 2.0


def test_volume_scales_rms(server, player):
    def level(volume):
        player.set_volume(volume)
        rec, _ = record(server, lambda: (player.set_fault(True, 700.0), time.sleep(0.3),
                                         player.set_fault(False)))
        b = single_burst(rec)
        mid = rec.samples[b.start + int(0.05 * FS): b.end - int(0.05 * FS)]
        return float(np.sqrt(np.mean(mid ** 2)))

    loud, quiet = level(0.6), level(0.3)
    assert quiet / loud == pytest.approx(0.5, rel=0.02)


def test_missing_device_is_a_plain_sentence(server, player):
    for device in (99, "no such sound card"):
        with pytest.raises(AudioUnavailable) as err:
            CuePlayer(device=device).start()
        msg = str(err.value)
        assert msg.startswith("No sound output found: cue tones are off.")
        assert str(device) in msg and "Error querying" not in msg and "PaErrorCode" not in msg
    # The failed attempts did not disturb the open stream.
    assert player.running


def _run_app_snippet(code: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=30)


START_SNIPPET = """
import sys
from host.sinks.audio import AudioUnavailable, CuePlayer
try:
    CuePlayer().start()
except AudioUnavailable as e:
    print(e)
    sys.exit(3)
print("opened")
"""


def test_no_sound_server_is_a_plain_sentence(tmp_path):
    # A fresh app process whose only way to sound is a server that isn't there (this machine has
    # no sound card; libpulse never autospawns when PULSE_SERVER names a server).
    r = _run_app_snippet(START_SNIPPET, {"PULSE_SERVER": f"unix:{tmp_path}/no-server"})
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.strip() == ("No sound output found: cue tones are off. "
                                "No sound server (PulseAudio or PipeWire) or sound card answered.")
    assert "Traceback" not in r.stderr


def test_missing_portaudio_library_is_a_plain_sentence():
    # As on a machine without libportaudio2: sounddevice's import raises OSError.
    code = "import ctypes.util\nctypes.util.find_library = lambda name: None\n" + START_SNIPPET
    r = _run_app_snippet(code, {})
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.startswith("No sound output found: cue tones are off. The PortAudio library")
    assert "libportaudio2" in r.stdout and "Traceback" not in r.stderr


def test_ensure_server_uses_a_running_server_else_starts_one(server, player, monkeypatch, tmp_path):
    # A server answers (ours, through PULSE_SERVER): nothing is started, nothing changed.
    assert pulse.ensure_server() is None
    assert os.environ["PULSE_SERVER"] == server.address
    # None answers: a private server is started only when asked for, and the app's default
    # output device then plays into it.
    nowhere = f"unix:{tmp_path}/no-server"
    monkeypatch.setenv("PULSE_SERVER", nowhere)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("SUDO_UID", raising=False)
    assert pulse.ensure_server(start_private=False) is None
    own = pulse.ensure_server()
    try:
        assert own is not None and own.running and os.environ["PULSE_SERVER"] == own.address
        demo_player = CuePlayer()
        demo_player.start()
        try:
            rec, _ = record(own, lambda: (demo_player.set_fault(True, 1000.0), time.sleep(0.3),
                                          demo_player.set_fault(False)))
        finally:
            demo_player.close()
        b = single_burst(rec)
        assert abs(capture.dominant_frequency_hz(rec.samples[b.start: b.end]) - 1000.0) < 2.0
    finally:
        own.stop()
    assert os.environ["PULSE_SERVER"] == nowhere  # stop() undid activate()
    assert player.running
