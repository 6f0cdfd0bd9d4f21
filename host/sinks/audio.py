"""Audio cues: a continuous warning tone while the hip is too low, a chime when a rep went deep enough.

Data enters through `CuePlayer.set_fault / play_target / set_volume / set_muted`, called from the
pipeline thread; each call only stores a small immutable tuple (one atomic attribute write, no
lock). Sound leaves through one persistent `sounddevice.OutputStream` (stereo float32, 48 kHz,
480-frame blocks) whose callback, in PortAudio's thread, reads those tuples and synthesises the
next block. One long-lived stream with a synthesising callback had no dropouts in our trials;
`sd.play()` per beep cut beeps short (docs/architecture.md, library facts).

Sounds:
- fault tone: fundamental plus 2nd and 3rd harmonics (a reedy, insistent timbre), pitch from
  `fault_pitch_hz` (660-1320 Hz). Pitch glides (20 ms time constant) and pan moves over a block, so
  changes while on never click; on/off fade linearly over 8 ms.
- target chime: two soft bell-like notes rising a fourth, G4 then C5 (392 -> 523 Hz, below the
  fault range), 5 ms attack and exponential decay, 270 ms in all.
- spoken prompts (host.sinks.speech hands PCM to `play_voice`): mixed last, centred, ducked to
  20 % while a cue sounds; the cue path never waits for it (measured: `hiplevel bench latency
  --speech`).
Pan: -1 left only, 0 centre, +1 right only, equal power (cos/sin law).

The app must run where PortAudio is missing (`import sounddevice` raises OSError then) or no
sound output exists: `start()` raises `AudioUnavailable` with one plain sentence, and the caller
carries on silently.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

try:
    import sounddevice as sd
    _SD_IMPORT_ERROR: Exception | None = None
except OSError as e:  # PortAudio library missing: the app still runs, without sound
    sd = None
    _SD_IMPORT_ERROR = e

log = logging.getLogger(__name__)

FAULT_BASE_HZ = 660.0        # pitch at the threshold
FAULT_TOP_HZ = 1320.0        # pitch at FAULT_TOP_EXCESS_DEG past it and beyond (one octave up)
FAULT_TOP_EXCESS_DEG = 5.0

_FADE_S = 0.008              # on/off ramp of the fault tone
_GLIDE_TAU_S = 0.020         # pitch glide time constant
_GAIN_TAU_S = 0.010          # volume / mute smoothing
_FAULT_HARMONICS = ((1, 1.0), (2, 0.30), (3, 0.15))
_FAULT_AMP = 0.45 / sum(a for _, a in _FAULT_HARMONICS)  # peak 0.45 at volume 1
_CHIME_AMP = 0.45
_MAX_CHIME_VOICES = 4
_VOICE_AMP = 0.5             # spoken prompts, peak, below the cues
_VOICE_DUCK = 0.2            # speech gain while a cue sounds: the cue stays in front
_VOICE_DUCK_TAU_S = 0.015


class AudioUnavailable(Exception):
    """No sound output could be opened; the message is one plain sentence for the user."""


def fault_pitch_hz(excess_deg: float) -> float:
    """Fault-tone pitch for how far (deg) the hip is past the threshold.

    660 Hz at the threshold (excess 0), one octave higher (1320 Hz) at +5 deg, exponential in
    between so each degree sounds like the same step (a major third: 2**(1/5) = x1.149 per deg).
    Clamped: below 0 (or NaN) gives 660 Hz, above 5 deg gives 1320 Hz.
    """
    if not math.isfinite(excess_deg) or excess_deg <= 0.0:
        return FAULT_BASE_HZ
    frac = min(excess_deg, FAULT_TOP_EXCESS_DEG) / FAULT_TOP_EXCESS_DEG
    return FAULT_BASE_HZ * (FAULT_TOP_HZ / FAULT_BASE_HZ) ** frac


def pan_gains(pan: float) -> tuple[float, float]:
    """Equal-power (left, right) gains for pan in [-1, 1]; values outside are clamped."""
    p = min(1.0, max(-1.0, float(pan)))
    angle = (p + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def make_chime(samplerate: int = 48000) -> np.ndarray:
    """The target chime as mono float32 samples, peak 1.0 (scaled by the player)."""
    notes = ((0.000, 392.00, 0.150), (0.110, 523.25, 0.160))  # (start s, Hz, length s)
    total = int(round((notes[-1][0] + notes[-1][2]) * samplerate))
    out = np.zeros(total)
    for start_s, f, len_s in notes:
        n = int(round(len_s * samplerate))
        t = np.arange(n) / samplerate
        env = np.exp(-t / (len_s / 3.5))                        # ~ -30 dB by the note's end
        attack = int(0.005 * samplerate)
        env[:attack] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
        release = int(0.010 * samplerate)                        # reach exact zero, no click
        env[-release:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
        # Second partial fades faster: bright strike, warm tail, like a small bell.
        tone = np.sin(2 * np.pi * f * t) + 0.35 * np.exp(-t / 0.03) * np.sin(4 * np.pi * f * t)
        i0 = int(round(start_s * samplerate))
        out[i0: i0 + n] += env * tone
    return (out / np.abs(out).max()).astype(np.float32)


@dataclass(frozen=True)
class CueOnset:
    """When the latest cue started sounding. All times are time.monotonic() seconds.

    requested_s: when set_fault(True) (from off) or play_target() was called.
    callback_s: when the audio callback started writing the first block containing the cue. The
        cue's first sample is the first sample of that block; the block is heard later, after
        the stream's output latency.
    dac_s: PortAudio's prediction of when that first sample reaches the output (DAC), moved to
        the monotonic clock as callback_s + (outputBufferDacTime - currentTime); None if the host
        API gives no times (both zero).
    """
    kind: str
    requested_s: float
    callback_s: float
    dac_s: float | None


class CuePlayer:
    """Cue tones from one persistent output stream. See the module docstring.

    device: a sounddevice device (index or name, e.g. "pulse"); None = the system default.
    latency: PortAudio's suggested output latency ("low", "high" or seconds). Through PulseAudio,
    "low" with 480-frame blocks gave 20 ms stream latency and a median 25 ms from set_fault() to
    the sound leaving the (null) sink.
    """

    _open_players = 0            # streams open in this process (PortAudio re-init would kill them)
    _open_lock = threading.Lock()

    def __init__(self, device=None, samplerate: int = 48000, blocksize: int = 480,
                 volume: float = 0.6, muted: bool = False, latency="low"):
        self.device = device
        self.samplerate = int(samplerate)
        self.blocksize = int(blocksize)
        self.latency = latency
        self._stream = None
        self._underflows = 0
        # Commands written by the caller's thread, read by the callback. Each is one immutable
        # tuple replaced by a single attribute assignment, which is atomic in Python: no lock.
        self._fault_cmd = (False, FAULT_BASE_HZ, 0.0, 0.0)      # on, freq_hz, pan, requested_s
        self._chime_cmd = (0, 0.0, 0.0)                         # serial, pan, requested_s
        self._gain_cmd = (float(volume), bool(muted))
        self._voice_cmd = (0, None)                             # serial, mono float32 at samplerate
        self._voice_playing = False
        self._onset: CueOnset | None = None
        self._chime = make_chime(self.samplerate)
        self._reset_synth()

    def _reset_synth(self) -> None:
        # Callback-only state.
        self._phase = 0.0
        self._freq = FAULT_BASE_HZ
        self._fault_gain = 0.0
        self._fault_pan = (1.0, 1.0)
        self._fault_was_on = False
        self._master = 0.0
        self._chime_seen = self._chime_cmd[0]
        self._voices: list[list] = []                            # [pos, gain_l, gain_r]
        self._voice_seen = self._voice_cmd[0]
        self._speech = None                                      # mono samples being spoken
        self._speech_pos = 0
        self._voice_gain = 1.0
        n = self.blocksize if self.blocksize > 0 else 4096
        self._ramp = np.arange(1, n + 1, dtype=np.float64)

    # -- public API (any thread) -----------------------------------------------------------------
    def start(self) -> None:
        """Open the output stream. Raises AudioUnavailable (one plain sentence) if it can't."""
        if self._stream is not None:
            return
        if sd is None:
            raise AudioUnavailable(
                "No sound output found: cue tones are off. The PortAudio library is missing "
                "(on Debian/Ubuntu: apt install libportaudio2).")
        self._reset_synth()
        try:
            stream = self._open()
        except (sd.PortAudioError, ValueError) as first:
            # PortAudio lists devices once, at import. A sound server started since (ours, or a
            # desktop session's) appears only after re-initialising, which would kill other open
            # streams, so only do it when no player of ours is open.
            with CuePlayer._open_lock:
                may_rescan = CuePlayer._open_players == 0
            if not may_rescan:
                raise AudioUnavailable(self._explain(first)) from None
            try:
                sd._terminate()
                sd._initialize()
                stream = self._open()
            except (sd.PortAudioError, ValueError) as second:
                raise AudioUnavailable(self._explain(second)) from None
        self._stream = stream
        with CuePlayer._open_lock:
            CuePlayer._open_players += 1
        log.info("cue tones on %s (output latency %.1f ms)",
                 sd.query_devices(stream.device)["name"], 1000 * stream.latency)

    def _open(self):
        stream = sd.OutputStream(
            samplerate=self.samplerate, blocksize=self.blocksize, channels=2, dtype="float32",
            latency=self.latency, device=self.device, callback=self._callback)
        try:
            stream.start()
        except Exception:
            stream.close(ignore_errors=True)
            raise
        return stream

    def _explain(self, err: Exception) -> str:
        base = "No sound output found: cue tones are off."
        try:
            n_out = sum(1 for d in sd.query_devices() if d["max_output_channels"] > 0)
        except Exception:
            n_out = 0
        if self.device is not None and self.device not in ("", -1):
            detail = (f"The output device {self.device!r} does not exist or cannot play "
                      f"stereo at {self.samplerate} Hz ({n_out} output devices found).")
        elif n_out == 0:
            detail = "No sound server (PulseAudio or PipeWire) or sound card answered."
        else:
            detail = (f"The default output device is busy or cannot play stereo at "
                      f"{self.samplerate} Hz.")
        log.info("opening the cue output failed: %s", err)  # PortAudio's words, for -v
        return f"{base} {detail}"

    def close(self) -> None:
        """Stop and close the stream. Safe to call twice."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        with CuePlayer._open_lock:
            CuePlayer._open_players -= 1
        try:
            stream.stop(ignore_errors=True)
        finally:
            stream.close(ignore_errors=True)

    def __enter__(self) -> "CuePlayer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_fault(self, on: bool, freq_hz: float = FAULT_BASE_HZ, pan: float = 0.0) -> None:
        """Warning tone on/off; pitch and pan may change while on (they glide).

        When turning off, freq_hz and pan are ignored: the tone fades out where it was.
        """
        was_on, old_f, old_pan, requested = self._fault_cmd
        if not on:
            self._fault_cmd = (False, old_f, old_pan, requested)
            return
        if not was_on:
            requested = time.monotonic()
        f = float(freq_hz)
        f = FAULT_BASE_HZ if not math.isfinite(f) else min(max(f, 20.0), 0.45 * self.samplerate)
        self._fault_cmd = (True, f, min(1.0, max(-1.0, float(pan))), requested)

    def play_target(self, pan: float = 0.0) -> None:
        """Play the "deep enough" chime once (overlaps a chime still sounding)."""
        self._chime_cmd = (self._chime_cmd[0] + 1, float(pan), time.monotonic())

    def play_voice(self, samples: np.ndarray) -> None:
        """Speak these mono samples (at the player's rate, peak about 1), replacing any speech still
        playing. Mixed under the cues: it ducks while a cue sounds and never delays one."""
        self._voice_cmd = (self._voice_cmd[0] + 1, np.asarray(samples, dtype=np.float32))
        self._voice_playing = True

    @property
    def voice_busy(self) -> bool:
        """True from play_voice() until the callback has played the last of it."""
        return self._voice_playing

    def set_volume(self, v: float) -> None:
        """Volume 0..1 (linear amplitude), applied smoothly."""
        self._gain_cmd = (min(1.0, max(0.0, float(v))), self._gain_cmd[1])

    def set_muted(self, muted: bool) -> None:
        self._gain_cmd = (self._gain_cmd[0], bool(muted))

    @property
    def volume(self) -> float:
        return self._gain_cmd[0]

    @property
    def muted(self) -> bool:
        return self._gain_cmd[1]

    @property
    def underflows(self) -> int:
        """Callbacks that PortAudio flagged with output underflow (a gap was heard)."""
        return self._underflows

    @property
    def running(self) -> bool:
        s = self._stream
        return s is not None and s.active

    @property
    def can_sound(self) -> bool:
        """A cue asked for now would be heard: the stream runs, not muted, volume above 0."""
        return self.running and not self.muted and self.volume > 0.0

    @property
    def output_latency_s(self) -> float | None:
        s = self._stream
        return None if s is None else float(s.latency)

    @property
    def last_onset(self) -> CueOnset | None:
        """The latest cue's onset (see CueOnset), or None before any audible cue."""
        return self._onset

    @property
    def last_onset_monotonic(self) -> float | None:
        """time.monotonic() when the callback began writing the latest cue's first block.

        Only audible cues count (not muted, volume > 0). Add the stream's output latency, or
        use `last_onset_dac_monotonic`, for when it leaves the speaker.
        """
        o = self._onset
        return None if o is None else o.callback_s

    @property
    def last_onset_dac_monotonic(self) -> float | None:
        """PortAudio's predicted output time of the latest cue's first sample, monotonic s."""
        o = self._onset
        return None if o is None else o.dac_s

    # -- audio thread ----------------------------------------------------------------------------
    def _callback(self, outdata, frames, time_info, status) -> None:
        """PortAudio's callback: mix the fault tone and the chimes into one block, apply the master
        gain, and note when an audible cue began. Runs on the audio thread; reads the command tuples
        the app thread replaced whole (no lock)."""
        t_cb = time.monotonic()
        if status.output_underflow:
            self._underflows += 1
        if len(self._ramp) < frames:
            self._ramp = np.arange(1, frames + 1, dtype=np.float64)
        ramp = self._ramp[:frames]
        out = np.zeros((frames, 2))
        master, audible = self._master_gain(frames, ramp)
        fault_onset = self._mix_fault(out, frames, ramp)
        chime_onset = self._mix_chimes(out, frames)
        self._mix_voice(out, frames, ramp)     # last and lowest: the cues above never wait for it
        out *= master[:, None]
        np.clip(out, -1.0, 1.0, out=out)
        outdata[:] = out
        onset = chime_onset or fault_onset     # both in one block: the chime was asked for last
        if onset is not None and audible:
            dac = None
            t_dac, t_now = time_info.outputBufferDacTime, time_info.currentTime
            if t_dac and t_now:
                dac = t_cb + (t_dac - t_now)
            self._onset = CueOnset(onset[0], onset[1], t_cb, dac)

    def _master_gain(self, frames: int, ramp: np.ndarray) -> tuple[np.ndarray, bool]:
        """Per-frame master gain gliding toward volume (0 when muted); and whether it is audible."""
        volume, muted = self._gain_cmd
        target = 0.0 if muted else volume
        m0 = self._master
        m1 = target + (m0 - target) * math.exp(-frames / (_GAIN_TAU_S * self.samplerate))
        if abs(m1 - target) < 1e-4:
            m1 = target
        self._master = m1
        return m0 + (m1 - m0) * ramp / frames, target > 0.0

    def _mix_fault(self, out: np.ndarray, frames: int, ramp: np.ndarray) -> tuple[str, float] | None:
        """Add the fault tone (fading in/out, pitch and pan gliding); ("fault", requested_s) when it
        switches on in this block."""
        fs = self.samplerate
        onset = None
        on, f_target, pan, requested = self._fault_cmd
        if on and not self._fault_was_on:
            if self._fault_gain == 0.0:
                self._freq = f_target            # a fresh tone starts at its pitch, no glide
            onset = ("fault", requested)
        self._fault_was_on = on
        g0 = self._fault_gain
        g_target = 1.0 if on else 0.0
        if g0 == g_target and not on:
            return onset
        step = 1.0 / (_FADE_S * fs)
        if g_target > g0:
            gain = np.minimum(g0 + step * ramp, g_target)
        else:
            gain = np.maximum(g0 - step * ramp, g_target)
        self._fault_gain = float(gain[-1])
        f0 = self._freq
        f1 = f_target + (f0 - f_target) * math.exp(-frames / (_GLIDE_TAU_S * fs))
        self._freq = f1
        freq = f0 + (f1 - f0) * ramp / frames
        phase = self._phase + np.cumsum(freq) * (2 * math.pi / fs)
        self._phase = float(phase[-1] % (2 * math.pi))
        wave = np.zeros(frames)
        for k, a in _FAULT_HARMONICS:
            wave += a * np.sin(k * phase)
        wave *= gain * _FAULT_AMP
        l0, r0 = self._fault_pan
        l1, r1 = pan_gains(pan)
        if g0 == 0.0:
            l0, r0 = l1, r1                      # a fresh tone starts at its pan
        self._fault_pan = (l1, r1)
        out[:, 0] += wave * (l0 + (l1 - l0) * ramp / frames)
        out[:, 1] += wave * (r0 + (r1 - r0) * ramp / frames)
        return onset

    def _mix_chimes(self, out: np.ndarray, frames: int) -> tuple[str, float] | None:
        """Add every chime voice still sounding; ("target", requested_s) when a new one starts."""
        onset = None
        serial, cpan, crequested = self._chime_cmd
        if serial != self._chime_seen:
            self._chime_seen = serial
            if len(self._voices) >= _MAX_CHIME_VOICES:
                self._voices.pop(0)
            gl, gr = pan_gains(cpan)
            self._voices.append([0, gl * _CHIME_AMP, gr * _CHIME_AMP])
            onset = ("target", crequested)
        if self._voices:
            chime = self._chime
            alive = []
            for v in self._voices:
                pos, gl, gr = v
                n = min(frames, len(chime) - pos)
                seg = chime[pos: pos + n]
                out[:n, 0] += gl * seg
                out[:n, 1] += gr * seg
                v[0] = pos + n
                if v[0] < len(chime):
                    alive.append(v)
            self._voices = alive
        return onset

    def _mix_voice(self, out: np.ndarray, frames: int, ramp: np.ndarray) -> None:
        """Add the spoken prompt, centred, ducked to _VOICE_DUCK while the fault tone or a chime is
        sounding (the cue's words matter more than the instruction's)."""
        serial, samples = self._voice_cmd
        if serial != self._voice_seen:
            self._voice_seen = serial
            self._speech, self._speech_pos = samples, 0
        speech = self._speech
        if speech is None:
            return
        cue_sounding = self._fault_gain > 0.0 or self._fault_was_on or bool(self._voices)
        target = _VOICE_DUCK if cue_sounding else 1.0
        g0 = self._voice_gain
        g1 = target + (g0 - target) * math.exp(-frames / (_VOICE_DUCK_TAU_S * self.samplerate))
        self._voice_gain = g1
        pos = self._speech_pos
        n = min(frames, len(speech) - pos)
        if n > 0:
            gain = (g0 + (g1 - g0) * ramp[:n] / frames) * (_VOICE_AMP * 0.7071)
            seg = speech[pos: pos + n] * gain
            out[:n, 0] += seg
            out[:n, 1] += seg
        self._speech_pos = pos + max(n, 0)
        if self._speech_pos >= len(speech):
            self._speech = None
            if self._voice_seen == self._voice_cmd[0]:
                self._voice_playing = False


class AudioCueSink:
    """Pipeline cue state -> CuePlayer calls, only when something audible changes: the target
    chime once per crossing, the fault tone on/off with its pitch following the excess. `update`
    returns whether a tone is sounding for the cue (the player's stream runs, it is not muted and
    the volume is above 0), so the record never says a cue was heard when it was not."""

    def __init__(self, player):
        self.player = player
        self._on = False
        self._last_update = 0.0

    def update(self, kind: str, on: bool, audible: bool, excess_deg: float, low_side: str) -> bool:
        pan = 0.6 if low_side == "right" else -0.6  # toward the low side
        if kind == "target":
            played = False
            if on and not self._on and audible:
                self.player.play_target(pan)
                played = self.player.can_sound
            self._on = on
            return played
        on = on and audible
        if on != self._on or (on and time.monotonic() - self._last_update > 0.02):
            self.player.set_fault(on, fault_pitch_hz(excess_deg), pan)
            self._on = on
            self._last_update = time.monotonic()
        return on and self.player.can_sound


def open_cue_player(mute: bool, volume: float, private_audio: bool, say) -> CuePlayer | None:
    """The cue player, or None with a plain message when there is no sound output (or --mute).

    The user's sound server (or, under sudo, the desktop user's) is used; with `private_audio` (the
    demo) a private one with a silent virtual output is started when none answers, so the whole cue
    path still runs on a box without sound. Close with `close_cue_player`."""
    if mute:
        return None
    from host.sinks.sound_server import ensure_server
    private = ensure_server(start_private=private_audio)
    if private is not None:
        say("No sound server found: started a private one; cue tones play into a silent virtual "
            "output (on a desktop you would hear them).")
    player = CuePlayer(volume=max(0.0, min(1.0, volume)))
    try:
        player.start()
    except AudioUnavailable as e:
        say(str(e))
        return None
    player.private_server = private  # stopped with the player, see close_cue_player
    return player


def close_cue_player(player: CuePlayer | None) -> None:
    if player is not None:
        player.close()
        if getattr(player, "private_server", None) is not None:
            player.private_server.stop()
