"""Starts the simulated sensor as a real process on a real pseudo-terminal, for end-to-end tests."""
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hiplevel(*args):
    return [sys.executable, "-m", "host.cli", *map(str, args)]


class SimProcess:
    """`hiplevel sim` as a process. Its first line says where to connect: `kind` and `fields` more
    words (never probe the link before it: a probe can swallow the sensor's first replies)."""

    def __init__(self, args, kind: str, fields: int):
        self.proc = subprocess.Popen(hiplevel("sim", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        first = self.proc.stdout.readline().split()
        assert len(first) == fields + 1 and first[0] == kind, \
            f"sim did not start: {first} {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.ready_at = time.monotonic()
        self.where = first[1:]

    def stop(self):
        try:
            self.proc.wait(5)  # it ends by itself after the scenario
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Sim(SimProcess):
    """The simulated sensor on a pseudo-terminal: `port` is its serial device."""

    def __init__(self, *args):
        super().__init__(args, "serial", 1)
        self.port = self.where[0]


def run_host(*args, timeout=120):
    return subprocess.run(hiplevel("run", *args), capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)
