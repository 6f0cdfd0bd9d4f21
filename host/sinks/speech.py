"""Spoken instructions ("stand still", "left leg: ten hip dips", "rest", the count, "well done")
through the same audio stream as the cues.

In: `Voice.say(text, kind)` from any thread (it only queues). Out: a worker thread synthesises each
phrase with espeak-ng (Debian package `espeak-ng`, `--stdout` gives a 16-bit mono WAV), resamples it
to the cue player's rate and hands it to `CuePlayer.play_voice`, which mixes it under the cues
(host.sinks.audio: speech ducks while a cue sounds and never delays one). One phrase at a time, in
order; a count that is not yet spoken when the next count arrives is dropped (the latest number is
the one worth hearing). Without espeak-ng, or for a voice it does not have, `open_voice` says so once
and returns None: the printed instructions go on.
"""
from __future__ import annotations

import queue
import shutil
import struct
import subprocess
import threading
import time

import numpy as np

ESPEAK = "espeak-ng"
WORDS_PER_MIN = 150


class VoiceUnavailable(Exception):
    """espeak-ng is missing or has no such voice; one plain sentence."""


def has_voice(language: str) -> bool:
    """Whether espeak-ng speaks `language` (its list, after the header, names the voices that do)."""
    out = subprocess.run([ESPEAK, f"--voices={language}"], capture_output=True, text=True, timeout=10).stdout
    return len(out.strip().splitlines()) > 1


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(mono float samples in -1..1, rate) of espeak-ng's 16-bit PCM WAV (its streamed header gives
    no true sizes, so the data chunk runs to the end)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    channels, rate = struct.unpack_from("<HI", data, 22)
    bits = struct.unpack_from("<H", data, 34)[0]
    i = data.find(b"data", 12)
    if i < 0 or bits != 16:
        raise ValueError("not 16-bit PCM")
    pcm = np.frombuffer(data[i + 8: i + 8 + (len(data) - i - 8) // 2 * 2], dtype="<i2").astype(np.float32)
    if channels > 1:
        pcm = pcm[: len(pcm) // channels * channels].reshape(-1, channels).mean(axis=1)
    return pcm / 32768.0, rate


def synthesise(text: str, language: str = "en", samplerate: int = 48000) -> np.ndarray:
    """The phrase as mono float32 at `samplerate`, peak normalised to 1."""
    done = subprocess.run([ESPEAK, "--stdout", "-v", language, "-s", str(WORDS_PER_MIN), text],
                          capture_output=True, timeout=20)
    if done.returncode != 0:
        raise VoiceUnavailable(f"espeak-ng could not speak ({done.stderr.decode(errors='replace').strip()})")
    pcm, rate = parse_wav(done.stdout)
    if rate != samplerate and len(pcm):
        # linear interpolation is plenty for a 22 kHz voice going up to 48 kHz
        t_out = np.arange(int(len(pcm) * samplerate / rate)) / samplerate
        pcm = np.interp(t_out, np.arange(len(pcm)) / rate, pcm).astype(np.float32)
    peak = float(np.abs(pcm).max()) if len(pcm) else 0.0
    return pcm / peak if peak > 0 else pcm


class Voice:
    def __init__(self, player, language: str = "en"):
        self.player = player
        self.language = language
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self.spoken: list[tuple[float, str, float]] = []   # (monotonic s handed over, text, seconds)
        self._thread = threading.Thread(target=self._run, name="hiplevel-voice", daemon=True)
        self._thread.start()

    def say(self, text: str, kind: str = "instruction") -> None:
        if not self._closed and text:
            self._queue.put((text, kind))

    def _next(self):
        item = self._queue.get()
        if item is None:
            return None
        # a count waiting behind a newer count is stale
        while item[1] == "count":
            try:
                newer = self._queue.queue[0]
            except IndexError:
                break
            if newer is None or newer[1] != "count":
                break
            item = self._queue.get()
        return item

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            text, _ = item
            try:
                pcm = synthesise(text, self.language, self.player.samplerate)
            except (VoiceUnavailable, ValueError, OSError, subprocess.TimeoutExpired):
                continue
            while self.player.voice_busy and not self._closed:  # one phrase at a time
                time.sleep(0.02)
            if self._closed:
                return
            self.player.play_voice(pcm)
            self.spoken.append((time.monotonic(), text, len(pcm) / self.player.samplerate))

    def close(self, wait_s: float = 3.0) -> None:
        """Let what is queued be spoken (up to wait_s), then stop."""
        self._queue.put(None)
        self._thread.join(timeout=wait_s)
        self._closed = True
        self._thread.join(timeout=1.0)


def open_voice(player, language: str, say) -> Voice | None:
    """A Voice on the cue player, or None with one plain sentence when espeak-ng cannot speak."""
    if shutil.which(ESPEAK) is None:
        say("No voice: espeak-ng is not installed (on Debian/Ubuntu: apt install espeak-ng); "
            "the instructions are printed.")
        return None
    if not has_voice(language):
        say(f"No voice: espeak-ng has no voice {language!r} (see `espeak-ng --voices`); the "
            "instructions are printed.")
        return None
    return Voice(player, language)
