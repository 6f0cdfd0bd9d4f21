"""Device clock to host clock mapping, tracking drift (as stream libraries such as LSL do).

In: for each frame, the device time of its newest sample and the host time it arrived
(`add(t_device_s, t_host_s)`). Out: `to_host(t_device_s)`, `to_device(t_host_s)`, `delay_s(...)`
(how late a frame arrived compared with the fastest arrivals) and `drift_ppm`: how fast the device's
clock runs against the host's, positive = device fast (same sign as the simulator's --clock-ppm).

Transport delay only ever adds to the host time, so the map follows the lower envelope of
offset = t_host - t_device: the earliest arrival (minimum offset) per `bin_s` of device time, and
the straight line under those minima (over the last `window_s`) that runs closest to them - an edge
of their lower convex hull. Bins where every frame came late (a stall, a burst after a radio
dropout) lie above it and do not matter. A device clock that jumps backward (a reboot) or far ahead
starts the map afresh.

`simulated`: a device clock more than SIMULATED_RATE_FACTOR off the host's is no crystal (those are
within ±100 ppm, an uncalibrated RC oscillator within ±2%): it is a simulator run faster or slower
than real time (`hiplevel sim --speed X`, replay pacing), and `time_scale` is that factor.
"""
from __future__ import annotations

import collections

import numpy as np


SIMULATED_RATE_FACTOR = 0.05  # device clock rate off by more than 5%: a time scale, not drift


class ClockMap:
    def __init__(self, window_s: float = 60.0, bin_s: float = 1.0, reset_jump_s: float = 30.0):
        self.bin_s = bin_s
        self.window_s = window_s
        self.reset_jump_s = reset_jump_s
        self._bins = collections.deque(maxlen=max(3, int(round(window_s / bin_s))))
        self.resets = 0
        self._clear()

    def _clear(self) -> None:
        self._bins.clear()
        self._bin_id = None
        self._bin_min = None  # (offset_s, t_device_s) of the current bin's earliest arrival
        self._last_device_s = None
        self.offset_s = None  # host - device at device time _t_ref
        self._t_ref = 0.0
        self.slope = 0.0      # d(offset)/d(device time) = host seconds per device second - 1

    def add(self, t_device_s: float, t_host_s: float) -> None:
        last = self._last_device_s
        if last is not None and not (-self.bin_s < t_device_s - last < self.reset_jump_s):
            self._clear()  # the device clock restarted or jumped: the old line means nothing now
            self.resets += 1
        self._last_device_s = t_device_s
        offset = t_host_s - t_device_s
        bin_id = int(t_device_s // self.bin_s)
        if bin_id != self._bin_id:
            if self._bin_min is not None:
                self._bins.append(self._bin_min)
                self._refit()
            self._bin_id, self._bin_min = bin_id, None
        if self._bin_min is None or offset < self._bin_min[0]:
            self._bin_min = (offset, t_device_s)
        if self.offset_s is None or len(self._bins) < 3:
            # Too few bins for a line: the lowest offset seen so far, no drift.
            lowest = min([b[0] for b in self._bins] + [self._bin_min[0]])
            self.offset_s, self._t_ref, self.slope = lowest, t_device_s, 0.0

    def _refit(self) -> None:
        if len(self._bins) < 3:
            return
        t = np.array([b[1] for b in self._bins])
        off = np.array([b[0] for b in self._bins])
        t_ref = float(t[-1])
        t = t - t_ref
        # The line below every point that is closest to them on the whole (Moon et al. 1999: the
        # linear program's optimum lies on an edge of the lower convex hull). Points above the
        # envelope - late bins - cannot pull it up; a polled link's sawtooth delay cannot tilt it.
        hull = []
        for i in range(len(t)):
            while len(hull) >= 2:
                a, b = hull[-2], hull[-1]
                if (t[b] - t[a]) * (off[i] - off[a]) - (off[b] - off[a]) * (t[i] - t[a]) <= 0:
                    hull.pop()  # b lies on or above the segment a-i
                else:
                    break
            hull.append(i)
        best = None
        for a, b in zip(hull, hull[1:]):
            slope = (off[b] - off[a]) / (t[b] - t[a])
            intercept = off[a] - slope * t[a]
            cost = float(np.sum(off - intercept - slope * t))
            if best is None or cost < best[0]:
                best = (cost, slope, intercept)
        _, slope, intercept = best
        self.slope, self.offset_s, self._t_ref = float(slope), float(intercept), t_ref

    @property
    def ready(self) -> bool:
        return self.offset_s is not None

    @property
    def drift_ppm(self) -> float:
        """Device clock rate against the host's, in parts per million; positive = device runs fast."""
        return (1.0 / (1.0 + self.slope) - 1.0) * 1e6

    @property
    def time_scale(self) -> float:
        """Device seconds per host second (1.0 in real time; X for a simulator at --speed X)."""
        return 1.0 / (1.0 + self.slope)

    @property
    def simulated(self) -> bool:
        """The device clock runs so far off the host's that it is a sped-up (or slowed) simulation."""
        return abs(self.time_scale - 1.0) > SIMULATED_RATE_FACTOR

    def to_host(self, t_device_s: float) -> float:
        """Host time (time.monotonic()) at which the device's clock read t_device_s."""
        if self.offset_s is None:
            raise ValueError("no samples yet")
        return t_device_s + self.offset_s + self.slope * (t_device_s - self._t_ref)

    def to_device(self, t_host_s: float) -> float:
        """Inverse of to_host."""
        if self.offset_s is None:
            raise ValueError("no samples yet")
        return (t_host_s - self.offset_s + self.slope * self._t_ref) / (1.0 + self.slope)

    def delay_s(self, t_device_s: float, t_host_s: float) -> float:
        """How much later than the fastest arrivals a frame came (transport and scheduling delay)."""
        return t_host_s - self.to_host(t_device_s)
