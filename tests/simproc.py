"""Starts the simulated sensor as a real process on a real pseudo-terminal, for end-to-end tests."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def hiplevel(*args):
    return [sys.executable, "-m", "host.cli", *map(str, args)]


class Sim:
    def __init__(self, *args):
        self.proc = subprocess.Popen(hiplevel("sim", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        first = self.proc.stdout.readline().split()
        assert first and first[0] == "serial", f"sim did not start: {first} {self.proc.stderr.read()}"
        self.port = first[1]

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


def run_host(*args, timeout=120):
    return subprocess.run(hiplevel("run", *args), capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)
