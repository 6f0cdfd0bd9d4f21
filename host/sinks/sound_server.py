"""The app's sound server: find one that answers, or start a private PulseAudio with a null sink.

`ensure_server()` is what the app calls before opening the cue player: it returns None when a server
(PulseAudio or pipewire-pulse) already answers, else starts our own `PulseServer`. The audio tests
and `hiplevel bench latency` start a `PulseServer` too and record its null sink with
host.bench.audio_capture.

Data flow:
- `PulseServer.start()` runs `pulseaudio` as our own child process with a null sink named `cue`
  (48 kHz, stereo, float32, so nothing is resampled) in a fresh temp dir, and waits until
  `pactl info` answers. `activate()` points this process's libpulse (and so PortAudio -> ALSA ->
  the pulse plugin from libasound2-plugins) at it through the PULSE_SERVER variable;
  `client_env()` gives the same for child processes. The child dies with us (PR_SET_PDEATHSIG).

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
import time


log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 48000
CHANNELS = 2
BYTES_PER_FRAME = 4 * CHANNELS  # float32


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the thread that started it dies, so a
    killed app (SIGTERM, SIGKILL: no atexit) leaves no private sound server behind."""
    try:
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: atexit still stops it on a normal exit


def end_process(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
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
            end_process(proc)
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
