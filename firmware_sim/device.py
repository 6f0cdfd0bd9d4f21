"""The simulated belt sensor's firmware: samples the kinematic model like a real IMU and encodes frames.

In: a `Scenario` (firmware_sim.motion) and the true time since streaming started (the link owns the
wall clock and asks `frames_due(t_true_s)`). Out: encoded protocol frames (host.protocol.frames), exactly
as a real device would send them, plus an optional ground-truth CSV.

What makes it realistic: its own sample clock runs `clock_ppm` fast or slow, so device time drifts
against true time; white noise, a per-axis gyro bias with a slow random walk, a small accelerometer
bias, int16 quantisation at the announced scale factors; the sensor is mounted on the pelvis with a
small random tilt (and optional yaw, i.e. sitting toward the side of the pelvis); frames can be
dropped at random (`loss`) as a radio would. It keeps the last `history_s` of frames so a host that
reconnects can ask for what it missed (CMD_RESEND_FROM).

Truth CSV columns (one row per sample, written as samples are generated):
  seq            sample sequence number (as in the data frames)
  t_device_us    device timestamp of the sample (as in the data frames)
  t_true_s       true time since streaming started
  obliquity_deg  true pelvic obliquity, positive = left side high (docs/conventions.md)
  forward_tilt_deg  true forward lean of the pelvis, positive = forward
  rep            rep index (0-based) the sample belongs to, -1 outside reps
  sent           1 if the frame carrying this sample was sent, 0 if dropped by simulated loss
  phase          still | bend | settle | rep | end (firmware_sim.motion: calibration bends are not reps)
"""
from __future__ import annotations

import collections
import math

import numpy as np

from host.protocol.frames import (SEQ_MODULO, Command, DataFrame, FrameError, FrameType, InfoFrame,
                           decode_frame, encode_frame)

from .motion import Scenario, rot_x, rot_y, rot_z

G_MS2 = 9.80665
FW_VERSION = (0, 1, 0)
ACC_RANGE_G = 8
GYR_RANGE_DPS = 1000
ACC_G_PER_LSB = ACC_RANGE_G / 32768.0
GYR_DPS_PER_LSB = GYR_RANGE_DPS / 32768.0
RATES_HZ = (50, 100, 200, 400)

# Default mounting (docs/conventions.md): sensor x -> pelvis right, y -> up, z -> backward.
# Columns are the sensor axes expressed in the pelvis frame (x forward, y left, z up).
R_SENSOR_TO_PELVIS_DEFAULT = np.array([[0.0, 0.0, -1.0],
                                       [-1.0, 0.0, 0.0],
                                       [0.0, 1.0, 0.0]])


def mounting_matrix(yaw_deg: float = 0.0, tilt_deg: float = 0.0, tilt_dir_deg: float = 0.0):
    """Sensor->pelvis rotation: the default mounting, tilted by `tilt_deg` about a horizontal pelvis
    axis at `tilt_dir_deg` from forward, then turned by `yaw_deg` about the pelvis's vertical axis
    (positive = toward the patient's left side)."""
    d = math.radians(tilt_dir_deg)
    tilt = rot_z(np.float64(d)) @ rot_x(np.float64(math.radians(tilt_deg))) @ rot_z(np.float64(-d))
    return rot_z(np.float64(math.radians(yaw_deg))) @ tilt @ R_SENSOR_TO_PELVIS_DEFAULT


class SimDevice:
    def __init__(self, scenario: Scenario, rate_hz: int = 200, samples_per_frame: int = 4,
                 seed: int = 0, clock_ppm: float | None = None, mount_yaw_deg: float = 0.0,
                 mount_tilt_deg: float | None = None, noise: float = 1.0, loss: float = 0.0,
                 history_s: float = 10.0, truth_file=None, rates_hz: tuple = RATES_HZ):
        # rates_hz: what this firmware offers (a third-party sensor's rates under `sim --as`)
        if rate_hz not in rates_hz:
            raise ValueError(f"rate {rate_hz} Hz is not supported; choose from {rates_hz}")
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be a fraction from 0 to below 1")
        self.scenario = scenario
        self.rng = np.random.default_rng(seed)
        self.rate_hz = rate_hz
        self.samples_per_frame = samples_per_frame
        self.clock_ppm = float(self.rng.uniform(-50, 50) if clock_ppm is None else clock_ppm)
        if mount_tilt_deg is None:
            mount_tilt_deg = float(self.rng.uniform(2.0, 5.0))
        self.mount = mounting_matrix(mount_yaw_deg, mount_tilt_deg, float(self.rng.uniform(0, 360)))
        self.noise = noise
        self.loss = loss
        # noise: scale of all sensor errors (1 = a typical consumer MEMS IMU, 0 = ideal sensor)
        self.acc_noise_g = 0.0015 * noise
        self.gyr_noise_dps = 0.07 * noise
        self.gyr_bias_dps = self.rng.normal(0.0, 0.5, 3) * noise
        self.acc_bias_g = self.rng.normal(0.0, 0.004, 3) * noise
        self.boot_us = int(self.rng.integers(1_000_000, 50_000_000))  # device up-time at start
        self._dev_us = float(self.boot_us)  # device time of the next sample
        self._seq = 0
        self._history = collections.deque()
        self.history_s = history_s
        self.streaming = False
        self.sent_frames = 0
        self.dropped_frames = 0
        self.truth_file = truth_file
        if truth_file is not None:
            truth_file.write("seq,t_device_us,t_true_s,obliquity_deg,forward_tilt_deg,rep,sent,phase\n")

    # ---- what the host sees ----
    def info_frame(self) -> bytes:
        return encode_frame(InfoFrame(self.rate_hz, ACC_RANGE_G, GYR_RANGE_DPS, ACC_G_PER_LSB,
                                      GYR_DPS_PER_LSB, FW_VERSION, self.samples_per_frame))

    def handle_command(self, frame_bytes: bytes) -> list[bytes]:
        """A command frame from the host; returns frames to send back."""
        try:
            cmd = decode_frame(frame_bytes)
        except FrameError:
            return []  # firmware ignores what it cannot parse
        if not isinstance(cmd, Command):
            return []
        if cmd.type == FrameType.CMD_START:
            self.streaming = True
            return [self.info_frame()]
        if cmd.type == FrameType.CMD_STOP:
            self.streaming = False
            return []
        if cmd.type == FrameType.CMD_SET_RATE:
            if cmd.rate_hz in RATES_HZ:
                self.set_rate(cmd.rate_hz)
            return [self.info_frame()]
        if cmd.type == FrameType.CMD_RESEND_FROM:
            return self.resend_from(cmd.from_seq)
        return []

    def stop_frame(self) -> bytes:
        """Sent by the device when the scenario is over: streaming stopped."""
        return encode_frame(Command(FrameType.CMD_STOP))

    def set_rate(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz

    def jump_clock(self, by_s: float) -> None:
        """Make the device clock jump by `by_s` (negative = back), as a faulty RTC or a firmware
        clock reset would; true time and the sample numbering go on unchanged."""
        self._dev_us += by_s * 1e6
        self.boot_us += by_s * 1e6

    def set_samples_per_frame(self, n: int) -> None:
        self.samples_per_frame = max(1, min(255, n))

    def resend_from(self, seq: int) -> list[bytes]:
        out = []
        for first, n, frame in self._history:
            if (first + n - 1 - seq) % SEQ_MODULO < SEQ_MODULO // 2:  # frame ends at or after seq
                out.append(frame)
        return out

    # ---- the sample clock ----
    def _true_time_s(self, dev_us):
        return (np.asarray(dev_us) - self.boot_us) * 1e-6 / (1.0 + self.clock_ppm * 1e-6)

    @property
    def finished(self) -> bool:
        return self._true_time_s(self._dev_us) > self.scenario.duration_s

    def frames_due(self, t_true_s: float) -> list[bytes]:
        """Frames whose samples have all been taken by true time t_true_s. Frames lost on the way
        (simulated loss) are kept in the history but not returned."""
        n = self.samples_per_frame
        period_us = 1e6 / self.rate_hz
        # how many whole frames are due, without passing the end of the scenario
        end_true = min(t_true_s, self.scenario.duration_s + n / self.rate_hz)
        last_us = end_true * 1e6 * (1.0 + self.clock_ppm * 1e-6) + self.boot_us
        k = int((last_us - self._dev_us) // (period_us * n) + 1) if last_us >= self._dev_us else 0
        dev_us = self._dev_us + period_us * np.arange(k * n)
        keep = self._true_time_s(dev_us.reshape(k, n)[:, -1]) <= t_true_s if k else np.zeros(0, bool)
        start_ok = self._true_time_s(dev_us.reshape(k, n)[:, 0]) <= self.scenario.duration_s if k else keep
        k = int(np.count_nonzero(keep & start_ok))
        if k == 0:
            return []
        dev_us = dev_us[:k * n]
        self._dev_us = float(dev_us[-1] + period_us)
        out = []
        for i, frame in enumerate(self._sample_frames(np.round(dev_us).astype(np.int64), n)):
            lost = self.loss and self.rng.random() < self.loss
            if lost:
                self.dropped_frames += 1
            else:
                self.sent_frames += 1
                out.append(frame)
            self._truth_seq0 = (self._seq - (k - i) * n) % SEQ_MODULO
            self._write_truth(dev_us[i * n:(i + 1) * n], sent=not lost)
        return out

    def _sample_frames(self, dev_us: np.ndarray, n: int) -> list[bytes]:
        """Sample the model at these device times (a whole number of frames) and encode frames."""
        k = len(dev_us) // n
        t = self._true_time_s(dev_us)
        acc_g, gyr_dps = self.imu_readings(t)
        if self.noise:
            # gyro bias: a random walk, one step per frame
            steps = self.rng.normal(0, 0.002 * math.sqrt(n / self.rate_hz), (k, 3)) * self.noise
            bias = self.gyr_bias_dps + np.cumsum(steps, axis=0)
            self.gyr_bias_dps = bias[-1]
            acc_g = acc_g + self.acc_bias_g + self.rng.normal(0, self.acc_noise_g, (k * n, 3))
            gyr_dps = gyr_dps + np.repeat(bias, n, axis=0) + self.rng.normal(0, self.gyr_noise_dps, (k * n, 3))
        acc_raw = np.clip(np.round(acc_g / ACC_G_PER_LSB), -32768, 32767).astype(np.int16)
        gyr_raw = np.clip(np.round(gyr_dps / GYR_DPS_PER_LSB), -32768, 32767).astype(np.int16)
        frames = []
        keep = int(self.history_s * self.rate_hz / max(1, n)) + 1
        for i in range(k):
            sl = slice(i * n, (i + 1) * n)
            first = self._seq
            self._seq = (self._seq + n) % SEQ_MODULO
            frame = encode_frame(DataFrame(first, int(dev_us[i * n]), acc_raw[sl], gyr_raw[sl]))
            self._history.append((first, n, frame))
            frames.append(frame)
        while len(self._history) > keep:
            self._history.popleft()
        return frames

    def imu_readings(self, t_s: np.ndarray, h: float = 1e-3):
        """Ideal (noise-free) accelerometer (g) and gyroscope (deg/s) in the sensor frame at true
        times t_s, by differentiating the kinematic model numerically (central differences)."""
        R_m, p_m = self.scenario.pelvis(t_s - h)
        R_0, p_0 = self.scenario.pelvis(t_s)
        R_p, p_p = self.scenario.pelvis(t_s + h)
        Rs_m, Rs_0, Rs_p = R_m @ self.mount, R_0 @ self.mount, R_p @ self.mount  # sensor->earth
        D = np.swapaxes(Rs_m, -1, -2) @ Rs_p  # = exp(2h [w_S]x), w_S in the sensor frame
        v = 0.5 * np.stack([D[..., 2, 1] - D[..., 1, 2], D[..., 0, 2] - D[..., 2, 0],
                            D[..., 1, 0] - D[..., 0, 1]], -1)
        s = np.linalg.norm(v, axis=-1, keepdims=True)
        c = (np.trace(D, axis1=-2, axis2=-1)[..., None] - 1.0) / 2.0
        angle = np.arctan2(s, c)
        scale = np.where(s > 1e-12, angle / np.maximum(s, 1e-300), 1.0)
        gyr_dps = np.degrees(v * scale / (2 * h))
        lin_acc_ms2 = (p_p - 2 * p_0 + p_m) / (h * h)
        f_earth_g = lin_acc_ms2 / G_MS2 + np.array([0.0, 0.0, 1.0])  # specific force: +1 g up at rest
        acc_g = np.einsum("nji,nj->ni", Rs_0, f_earth_g)  # R^T f
        return acc_g, gyr_dps

    def _write_truth(self, dev_us, sent: bool) -> None:
        if self.truth_file is None:
            return
        t = self._true_time_s(dev_us)
        obl, lean, _ = self.scenario.angles_deg(t)
        # the exact obliquity/lean of the model's rotation (lean is exact only at zero obliquity)
        R, _ = self.scenario.pelvis(t)
        fwd_elev = np.degrees(np.arcsin(np.clip(R[:, 2, 0], -1, 1)))
        reps = self.scenario.rep_index(t)
        phases = self.scenario.phase_names(t)
        seq0 = self._truth_seq0
        lines = [f"{(seq0 + i) % SEQ_MODULO},{int(round(dev_us[i]))},{t[i]:.6f},{obl[i]:.5f},"
                 f"{-fwd_elev[i]:.5f},{reps[i]},{int(sent)},{phases[i]}\n" for i in range(len(t))]
        self.truth_file.write("".join(lines))
