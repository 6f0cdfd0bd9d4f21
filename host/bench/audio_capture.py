"""Test- and bench-only: record what the sound server played, and analyse the recording.

`SinkCapture(server_address, monitor_source).start()` runs `parec` on the null sink's monitor
(host.sinks.sound_server.PulseServer.monitor_source) and reads its raw float32 output on a thread,
stamping every chunk with `time.monotonic()` on arrival; `stop()` returns a `Recording`: the samples
plus a map from sample index to host time. `capture(server)` is the short form for a PulseServer.
The functions at the end (`bursts`, `dominant_frequency_hz`, `channel_rms`, `balance`,
`find_dropouts`) take numpy arrays of samples, shape (n,) or (n, channels), and return numbers.
The app itself never records: this module is not imported outside tests and benchmarks.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import numpy as np

from host.sinks.sound_server import BYTES_PER_FRAME, CHANNELS, SAMPLE_RATE_HZ, PulseServerError, end_process


def capture(server, latency_ms: float = 5.0) -> "SinkCapture":
    """Start recording a PulseServer's null-sink monitor; returns once samples are flowing."""
    return SinkCapture(server.address, server.monitor_source, server.samplerate, latency_ms).start()


# -- recording -----------------------------------------------------------------------------------
@dataclass
class Recording:
    """What `parec` delivered: samples (n, 2) float32 plus when each chunk arrived on the host.

    `arrival_host_s[i]` is time.monotonic() when the chunk ending at frame `arrival_frames[i]`
    (exclusive) was read from parec's pipe.
    """
    samples: np.ndarray
    samplerate: int
    arrival_host_s: np.ndarray
    arrival_frames: np.ndarray

    @property
    def frame0_host_s(self) -> float:
        """Host time at which frame 0 was rendered by the null sink (upper bound; see below).

        The null sink renders in real time from the monotonic clock, and a frame cannot arrive
        before it was rendered, so arrival - frames/rate >= the true offset for every chunk; the
        minimum over all chunks is the tightest estimate. It errs late by the smallest delivery
        delay (parec's fragment plus a pipe read), about a millisecond with latency_ms=5.
        """
        return float(np.min(self.arrival_host_s - self.arrival_frames / self.samplerate))

    def host_time_of_frame(self, frame: float) -> float:
        return self.frame0_host_s + frame / self.samplerate

    def frame_of_host_time(self, t_host_s: float) -> int:
        return int(round((t_host_s - self.frame0_host_s) * self.samplerate))

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.samplerate


class SinkCapture:
    """`parec` on a monitor source, read on a thread so every chunk gets an arrival time."""

    def __init__(self, server_address: str, source: str, samplerate: int = SAMPLE_RATE_HZ,
                 latency_ms: float = 5.0):
        self.server_address = server_address
        self.source = source
        self.samplerate = samplerate
        self.latency_ms = latency_ms
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._chunks: list[bytes] = []
        self._arrivals: list[tuple[float, int]] = []
        self._first = threading.Event()

    def start(self, timeout_s: float = 5.0) -> "SinkCapture":
        parec = shutil.which("parec")
        if parec is None:
            raise PulseServerError("parec is not installed (package pulseaudio-utils).")
        env = dict(os.environ, PULSE_SERVER=self.server_address)
        self._proc = subprocess.Popen(
            [parec, "-d", self.source, "--raw", "--format=float32le", f"--rate={self.samplerate}",
             f"--channels={CHANNELS}", f"--latency-msec={self.latency_ms:g}"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._thread = threading.Thread(target=self._read, name="parec-reader", daemon=True)
        self._thread.start()
        if not self._first.wait(timeout_s):
            err = self._stop_proc()
            raise PulseServerError(f"Recording from {self.source} did not start: {err or 'no data'}")
        return self

    def _read(self) -> None:
        fd = self._proc.stdout.fileno()
        total = 0
        while True:
            b = os.read(fd, 1 << 16)
            t = time.monotonic()
            if not b:
                break
            total += len(b)
            self._chunks.append(b)
            self._arrivals.append((t, total // BYTES_PER_FRAME))
            self._first.set()

    def _stop_proc(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        end_process(proc)
        if self._thread is not None:
            self._thread.join(timeout=5)
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stdout.close()
        proc.stderr.close()
        return err

    def stop(self) -> Recording:
        self._stop_proc()
        data = b"".join(self._chunks)
        n = len(data) // BYTES_PER_FRAME
        samples = np.frombuffer(data[: n * BYTES_PER_FRAME], dtype="<f4").reshape(n, CHANNELS)
        arr = np.array(self._arrivals, dtype=float).reshape(-1, 2)
        return Recording(samples.copy(), self.samplerate, arr[:, 0], arr[:, 1])

    def __enter__(self) -> "SinkCapture":
        return self

    def __exit__(self, *exc) -> None:
        self._stop_proc()


# -- analysis ------------------------------------------------------------------------------------
def _mono_abs(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.abs(x).max(axis=1) if x.ndim == 2 else np.abs(x)


def _frame_max(a: np.ndarray, frame: int) -> np.ndarray:
    n = len(a) // frame
    if n == 0:
        return np.zeros(0)
    return a[: n * frame].reshape(n, frame).max(axis=1)


@dataclass(frozen=True)
class Burst:
    start: int  # first frame above threshold
    end: int    # one past the last frame above threshold

    def length_s(self, samplerate: int = SAMPLE_RATE_HZ) -> float:
        return (self.end - self.start) / samplerate


def bursts(x: np.ndarray, samplerate: int = SAMPLE_RATE_HZ, rel_threshold: float = 0.02,
           abs_threshold: float = 1e-4, min_gap_s: float = 0.05, min_len_s: float = 0.005
           ) -> list[Burst]:
    """Tone bursts: stretches where |x| exceeds max(rel_threshold * peak, abs_threshold).

    Quieter stretches shorter than `min_gap_s` inside a burst don't split it (a dropout stays
    inside its burst, where `find_dropouts` finds it). Start and end are sample-exact; with the
    player's linear 8 ms fades a 2% threshold puts them 0.16 ms inside the true edges.
    """
    a = _mono_abs(x)
    if len(a) == 0:
        return []
    thr = max(rel_threshold * float(a.max()), abs_threshold)
    frame = max(1, samplerate // 1000)
    active = _frame_max(a, frame) > thr
    idx = np.flatnonzero(active)
    if len(idx) == 0:
        return []
    runs = []
    run_start = prev = idx[0]
    max_gap = max(1, int(min_gap_s * 1000))
    for i in idx[1:]:
        if i - prev > max_gap:
            runs.append((run_start, prev))
            run_start = i
        prev = i
    runs.append((run_start, prev))
    out = []
    for f0, f1 in runs:
        s0, s1 = f0 * frame, (f1 + 1) * frame
        above = np.flatnonzero(a[s0:s1] > thr)
        b = Burst(int(s0 + above[0]), int(s0 + above[-1] + 1))
        if b.length_s(samplerate) >= min_len_s:
            out.append(b)
    return out


def dominant_frequency_hz(x: np.ndarray, samplerate: int = SAMPLE_RATE_HZ,
                          fmin_hz: float = 20.0, fmax_hz: float | None = None) -> float:
    """Frequency of the strongest spectral peak, to a small fraction of a Hz on a clean tone.

    Hann window, 4x zero padding, then a parabola through the log magnitudes of the peak bin and
    its neighbours (Gaussian interpolation; for a Hann window the error is far below 1 Hz on
    segments of 0.1 s and longer). Channels are summed.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.sum(axis=1)
    if len(x) < 16:
        raise ValueError("segment too short for a frequency estimate")
    nfft = 1 << int(np.ceil(np.log2(len(x) * 4)))
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), nfft))
    freqs = np.fft.rfftfreq(nfft, 1.0 / samplerate)
    lo = max(1, int(np.searchsorted(freqs, fmin_hz)))
    hi = len(freqs) - 1 if fmax_hz is None else min(len(freqs) - 1, int(np.searchsorted(freqs, fmax_hz)))
    k = lo + int(np.argmax(spec[lo:hi]))
    if 0 < k < len(spec) - 1:
        la, lb, lc = np.log(spec[k - 1: k + 2] + 1e-30)
        denom = la - 2 * lb + lc
        delta = 0.5 * (la - lc) / denom if denom != 0 else 0.0
    else:
        delta = 0.0
    return float((k + delta) * samplerate / nfft)


def channel_rms(x: np.ndarray) -> tuple[float, ...]:
    """RMS of each channel."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return tuple(float(v) for v in np.sqrt(np.mean(x * x, axis=0)))


def balance(x: np.ndarray) -> float:
    """(R - L) / (R + L) of channel RMS: -1 all left, 0 centred, +1 all right; 0 for silence."""
    left, right = channel_rms(x)[:2]
    return 0.0 if left + right == 0 else (right - left) / (right + left)


@dataclass(frozen=True)
class Dropout:
    frame: int   # where in the segment
    kind: str    # "gap" (level fell away) or "click" (a jump no smooth tone makes)


def find_dropouts(x: np.ndarray, samplerate: int = SAMPLE_RATE_HZ, edge_s: float = 0.015,
                  gap_s: float = 0.002, gap_rel: float = 0.3, click_rel: float = 0.25
                  ) -> list[Dropout]:
    """Dropouts inside one burst of a steady tone (pass the burst, fades included).

    - gap: a `gap_s` window (2 ms, longer than one period above 500 Hz) whose peak falls below
      `gap_rel` of the burst's median window peak; `edge_s` at both ends is skipped (fades).
    - click: a second difference larger than `click_rel` of the peak level. A smooth tone's second
      difference is (2 pi f / rate)^2 times its amplitude (0.03 at 1.3 kHz, 0.11 for the fault
      tone's harmonics), a jump to or from silence gives about the amplitude itself.
    Returns the problems found (empty = clean), one per gap window or click (clicks closer than
    1 ms are counted once).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    edge = int(edge_s * samplerate)
    inner = x[edge: len(x) - edge]
    out: list[Dropout] = []
    if len(inner) == 0:
        return out
    a = np.abs(inner).max(axis=1)
    frame = max(1, int(gap_s * samplerate))
    env = _frame_max(a, frame)
    if len(env):
        ref = float(np.median(env))
        for j in np.flatnonzero(env < gap_rel * ref):
            out.append(Dropout(edge + int(j) * frame, "gap"))
    peak = float(np.abs(x).max())
    if peak > 0:
        d2 = np.abs(np.diff(x, n=2, axis=0)).max(axis=1)
        last = -samplerate
        for i in np.flatnonzero(d2 > click_rel * peak):
            if i - last > samplerate // 1000:
                out.append(Dropout(int(i) + 1, "click"))
            last = i
    return sorted(out, key=lambda d: d.frame)
