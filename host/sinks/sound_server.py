"""A private PulseAudio server with a null sink, its recorder, and analysis of what was recorded.

Used by the audio tests and by `hiplevel bench latency` to hear what the cue player really put out,
and by the app (`ensure_server`) to find a sound server to play to.

Data flow:
- `PulseServer.start()` runs `pulseaudio` as our own child process with a null sink named `cue`
  (48 kHz, stereo, float32, so nothing is resampled) in a fresh temp dir, and waits until
  `pactl info` answers. `activate()` points this process's libpulse (and so PortAudio -> ALSA ->
  the pulse plugin from libasound2-plugins) at it through the PULSE_SERVER variable;
  `client_env()` gives the same for child processes.
- `PulseServer.record()` runs `parec` on `cue.monitor` and reads its raw float32 output on a
  thread, stamping every chunk with `time.monotonic()` on arrival. `Recorder.stop()` returns a
  `Recording`: the samples plus a map from sample index to host time.
- The functions at the end (`bursts`, `dominant_frequency_hz`, `channel_rms`, `balance`,
  `find_dropouts`) take numpy arrays of samples, shape (n,) or (n, channels), and return numbers.

How the PortAudio route finds the server: Debian's libasound2-plugins defines the ALSA pcm `pulse`
(always) and, through a hook in /etc/alsa/conf.d/99-pulse.conf, makes it the ALSA `default` when a
server answers at the time PortAudio scans devices. Both honour PULSE_SERVER. PortAudio scans once
(at `import sounddevice`), so a server started later is seen only after PortAudio is
re-initialised; `host.sinks.audio.CuePlayer.start()` does that when its first attempt fails.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 48000
CHANNELS = 2
_BYTES_PER_FRAME = 4 * CHANNELS  # float32


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the thread that started it dies, so a
    killed app (SIGTERM, SIGKILL: no atexit) leaves no private sound server behind."""
    try:
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: atexit still stops it on a normal exit


def _end_process(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """Terminate a child we started, politely first; reap it either way."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


class PulseServerError(Exception):
    """The private sound server could not be started or recorded, said in plain words."""


class PulseServer:
    """A PulseAudio server of our own with one null sink, for recording what clients play.

    Runs `pulseaudio --daemonize=no` as a direct child (rather than --daemonize=yes) so that we hold
    its pid and stopping it can never hit another process. All its files live in one temp dir.
    """

    def __init__(self, sink_name: str = "cue", samplerate: int = SAMPLE_RATE_HZ):
        self.sink_name = sink_name
        self.samplerate = samplerate
        self._dir: str | None = None
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._saved_env: dict[str, str | None] | None = None

    # -- paths and environment -------------------------------------------------------------------
    @property
    def socket_path(self) -> str:
        if self._dir is None:
            raise PulseServerError("The private sound server is not started.")
        return os.path.join(self._dir, "rt", "pulse", "native")

    @property
    def address(self) -> str:
        """Server string for PULSE_SERVER / `pactl --server`."""
        return "unix:" + self.socket_path

    @property
    def monitor_source(self) -> str:
        return self.sink_name + ".monitor"

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a child process that should play to / record from this server."""
        env = dict(os.environ if base is None else base)
        env["PULSE_SERVER"] = self.address
        return env

    def activate(self) -> None:
        """Point this process's libpulse (PortAudio's ALSA pulse plugin) at this server.

        Undone by `deactivate()` / `stop()`. PortAudio must be re-initialised to see the change
        if it already scanned devices (CuePlayer.start() does that by itself when needed).
        """
        if self._saved_env is None:
            self._saved_env = {"PULSE_SERVER": os.environ.get("PULSE_SERVER")}
        os.environ["PULSE_SERVER"] = self.address

    def deactivate(self) -> None:
        if self._saved_env is None:
            return
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = None

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> "PulseServer":
        if self._proc is not None:
            return self
        exe = shutil.which("pulseaudio")
        if exe is None or shutil.which("pactl") is None:
            raise PulseServerError(
                "PulseAudio is not installed (packages pulseaudio and pulseaudio-utils).")
        self._dir = tempfile.mkdtemp(prefix="hiplevel-pulse-")
        rt = os.path.join(self._dir, "rt")
        os.makedirs(os.path.join(rt, "pulse"), mode=0o700)
        os.chmod(rt, 0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        # Everything the daemon writes (cookie, state, socket) goes into our temp dir.
        env.update(HOME=self._dir, XDG_RUNTIME_DIR=rt, XDG_CONFIG_HOME=os.path.join(self._dir, "cfg"),
                   PULSE_RUNTIME_PATH=os.path.join(rt, "pulse"),
                   PULSE_STATE_PATH=os.path.join(self._dir, "state"))
        args = [
            exe, "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
            "--log-target=stderr",
            # The socket dir is 0700, so anonymous access only admits processes that could read
            # our files anyway; it spares clients (with another HOME) the cookie.
            f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket_path}",
            # float32 at the rate the player uses: no resampling between player and recording.
            f"--load=module-null-sink sink_name={self.sink_name} rate={self.samplerate} "
            f"channels={CHANNELS} format=float32le "
            f"sink_properties=device.description=hiplevel-null-sink",
        ]
        self._log_file = open(os.path.join(self._dir, "pulseaudio.log"), "wb")
        self._proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self._log_file, stderr=subprocess.STDOUT,
                                      preexec_fn=_die_with_parent)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                msg = self._log_tail()
                self.stop()
                raise PulseServerError(f"The private sound server exited at start: {msg}")
            if server_answers(self.address, timeout_s=2.0):
                break
            if time.monotonic() > deadline:
                msg = self._log_tail()
                self.stop()
                raise PulseServerError(
                    f"The private sound server did not answer within {timeout_s:.0f} s: {msg}")
            time.sleep(0.05)
        log.info("private PulseAudio server at %s (pid %d)", self.address, self._proc.pid)
        return self

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self._dir, "pulseaudio.log"), "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
            lines = [ln for ln in lines if "not intended to be run as root" not in ln]
            return lines[-1] if lines else "no message"
        except OSError:
            return "no message"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the server (our own child, by pid) and remove its files. Safe to call twice."""
        self.deactivate()
        proc, self._proc = self._proc, None
        if proc is not None:
            _end_process(proc)
            atexit.unregister(self.stop)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "PulseServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def record(self, latency_ms: float = 5.0) -> "Recorder":
        """Start recording the null sink's monitor; returns once samples are flowing."""
        return Recorder(self.address, self.monitor_source, self.samplerate, latency_ms).start()


def server_answers(address: str | None = None, timeout_s: float = 3.0) -> bool:
    """True if a PulseAudio-protocol server (PulseAudio or pipewire-pulse) answers at `address`.

    address None means libpulse's own default lookup (PULSE_SERVER, then the user's runtime dir).
    Uses `pactl info` when installed, else a bare connect to a unix socket.
    """
    pactl = shutil.which("pactl")
    if pactl is not None:
        cmd = [pactl] + (["--server", address] if address else []) + ["info"]
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0
    if address is None:
        address = os.environ.get("PULSE_SERVER") or "unix:" + os.path.join(
            os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}"), "pulse", "native")
    if not address.startswith("unix:"):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(address[len("unix:"):])
        return True
    except OSError:
        return False
    finally:
        s.close()


def ensure_server(start_private: bool = True) -> PulseServer | None:
    """Make sure the cue player has a sound server to play to, starting one only if none answers.

    1. The user's own server (PulseAudio or PipeWire's pulse) answers: use it, return None.
    2. Run through sudo: the desktop user's server (/run/user/$SUDO_UID/pulse/native) answers:
       point PULSE_SERVER (and PULSE_COOKIE) at it, return None.
    3. Otherwise, if `start_private`: start a private server with a null sink, point this process
       at it and return it (the caller stops it, or it stops at exit). Tones then go nowhere
       audible, but the whole cue path runs and can be recorded. If not `start_private`, return
       None and let CuePlayer.start() report that there is no sound output.
    """
    if server_answers(None):
        return None
    sudo_uid = os.environ.get("SUDO_UID")
    if sudo_uid and sudo_uid != str(os.getuid()):
        addr = f"unix:/run/user/{sudo_uid}/pulse/native"
        if server_answers(addr):
            os.environ["PULSE_SERVER"] = addr
            user = os.environ.get("SUDO_USER")
            cookie = os.path.expanduser(f"~{user}/.config/pulse/cookie") if user else ""
            if cookie and os.path.exists(cookie):
                os.environ["PULSE_COOKIE"] = cookie
            return None
    if not start_private:
        return None
    try:
        server = PulseServer().start()
    except PulseServerError as e:
        log.warning("%s", e)
        return None
    server.activate()
    return server


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


class Recorder:
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

    def start(self, timeout_s: float = 5.0) -> "Recorder":
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
            self._arrivals.append((t, total // _BYTES_PER_FRAME))
            self._first.set()

    def _stop_proc(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        _end_process(proc)
        if self._thread is not None:
            self._thread.join(timeout=5)
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stdout.close()
        proc.stderr.close()
        return err

    def stop(self) -> Recording:
        self._stop_proc()
        data = b"".join(self._chunks)
        n = len(data) // _BYTES_PER_FRAME
        samples = np.frombuffer(data[: n * _BYTES_PER_FRAME], dtype="<f4").reshape(n, CHANNELS)
        arr = np.array(self._arrivals, dtype=float).reshape(-1, 2)
        return Recording(samples.copy(), self.samplerate, arr[:, 0], arr[:, 1])

    def __enter__(self) -> "Recorder":
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
