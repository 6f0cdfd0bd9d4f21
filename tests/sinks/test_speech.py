"""Spoken prompts: espeak-ng's real output through CuePlayer and a real PulseAudio server, recorded
from the null sink's monitor (host.bench.audio_capture) and recognised by timing and duration; the
cue tone starting in the middle of a phrase is not delayed and stays in front (the voice ducks)."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from host.bench import audio_capture as capture
from host.sinks import sound_server as pulse
from host.sinks.audio import CuePlayer
from host.sinks.speech import Voice, has_voice, parse_wav, synthesise

pytestmark = [pytest.mark.sound,
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed "
                                 "(make test installs it: SYSPKGS in the Makefile)")]
FS = 48000


@pytest.fixture(scope="module")
def player():
    srv = pulse.PulseServer().start()
    srv.activate()
    p = CuePlayer(device="pulse")
    p.start()
    yield srv, p
    p.close()
    srv.stop()


def test_synthesis_gives_speech_of_a_plausible_length():
    short, long = synthesise("Rest.", "en", FS), synthesise("Left leg: ten hip dips.", "en", FS)
    assert 0.2 < len(short) / FS < 1.2 and 1.0 < len(long) / FS < 3.0, (len(short) / FS, len(long) / FS)
    assert abs(np.abs(long).max() - 1.0) < 1e-6
    assert has_voice("en") and not has_voice("xx-nonexistent")
    with pytest.raises(ValueError):
        parse_wav(b"not a wav file at all, no")


def test_prompts_are_heard_in_order_with_their_durations(player):
    srv, p = player
    voice = Voice(p, "en")
    rec = capture.capture(srv)
    time.sleep(0.1)
    t_said = time.monotonic()
    for text in ("Stand still.", "Left leg: ten hip dips.", "Rest."):
        voice.say(text)
    deadline = time.monotonic() + 15
    while (len(voice.spoken) < 3 or p.voice_busy) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    recording = rec.stop()
    voice.close()
    assert [t for _, t, _ in voice.spoken] == ["Stand still.", "Left leg: ten hip dips.", "Rest."]
    x = recording.samples
    assert np.allclose(x[:, 0], x[:, 1], atol=1e-3)  # centred: the same in both ears
    # a phrase is one burst or a few (pauses between words); group bursts by the phrase they fall in
    found = capture.bursts(x, FS, rel_threshold=0.05, min_gap_s=0.15)
    starts = [t for t, _, _ in voice.spoken] + [recording.host_time_of_frame(len(x))]
    for k, (t_start, text, dur) in enumerate(voice.spoken):
        f0, f1 = recording.frame_of_host_time(t_start), recording.frame_of_host_time(starts[k + 1])
        mine = [b for b in found if f0 <= b.start < f1]
        assert mine, f"{text!r} not heard"
        # what espeak-ng made, measured the same way (its WAV has silence at the ends)
        made = capture.bursts(synthesise(text, "en", FS), FS, rel_threshold=0.05, min_gap_s=0.15)
        made_s = (made[-1].end - made[0].start) / FS
        start_s = recording.host_time_of_frame(mine[0].start) - t_start - made[0].start / FS
        heard_s = (mine[-1].end - mine[0].start) / FS
        assert -0.02 <= start_s < 0.2, (text, start_s)            # heard right after it was handed over
        assert abs(heard_s - made_s) < 0.1, (text, heard_s, made_s)  # as long as espeak-ng made it
    assert voice.spoken[0][0] >= t_said


def test_a_cue_in_the_middle_of_a_phrase_is_not_delayed_and_stays_in_front(player):
    srv, p = player
    pcm = synthesise("Left leg: ten hip dips, slowly, and keep the pelvis level.", "en", FS)
    rec = capture.capture(srv)
    time.sleep(0.1)
    p.play_voice(pcm)
    time.sleep(0.6)
    p.set_fault(True, 660.0, pan=0.6)   # panned right, the voice centred: L - R is the tone alone
    t_on = time.monotonic()
    time.sleep(0.5)
    p.set_fault(False)
    time.sleep(0.3)
    recording = rec.stop()
    x = recording.samples
    side = x[:, 1] - x[:, 0]
    (tone,) = capture.bursts(side, FS)
    delay_ms = 1000 * (recording.host_time_of_frame(tone.start) - t_on)
    assert 0 < delay_ms < 80, delay_ms  # the same path as without speech (tests/sinks/test_audio.py)
    # while the tone sounds the voice is ducked: the centred part is well under the tone
    mid = (x[:, 0] + x[:, 1]) / 2
    during = slice(tone.start + int(0.05 * FS), tone.end - int(0.05 * FS))
    before = slice(tone.start - int(0.45 * FS), tone.start - int(0.05 * FS))
    voice_before = np.sqrt(np.mean(mid[before] ** 2))
    assert voice_before > 0.01  # speech was playing before the cue
    tone_rms = np.sqrt(np.mean(side[during] ** 2))
    # the centred voice part during the tone: remove the tone's own centred share (gains cos/sin of the pan)
    gl, gr = np.cos(1.6 * np.pi / 4), np.sin(1.6 * np.pi / 4)
    tone_mid = side[during] * (gl + gr) / 2 / (gr - gl)
    voice_during = np.sqrt(np.mean((mid[during] - tone_mid) ** 2))
    assert voice_during < 0.5 * voice_before, (voice_during, voice_before)
    assert tone_rms > 3 * voice_during
