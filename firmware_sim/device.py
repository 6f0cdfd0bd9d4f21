"""The simulated belt sensor: THE firmware core (hardware/firmware/hiplevel_core.py) reading a simulated
LSM6DS3TR-C (firmware_sim.lsm6ds3) that samples the kinematic pelvis model.

In: a `Scenario` (firmware_sim.motion) and the true time since streaming started (the link owns the
wall clock and asks `frames_due(t_true_s)`); host command frames (`handle_command`). Out: the frames
the firmware core sends (it is the only encoder of sensor frames), plus an optional ground-truth
CSV. This module only plays the board: the chip's registers, the MCU's free-running 32-bit
microsecond counter, and the firmware's main loop, run every `poll_s` of true time.

What makes it realistic: the chip's oscillator runs `odr_error` off its nominal ODR (default: a
random few percent) and the MCU's counter `clock_ppm` fast or slow, so device time drifts against
true time; white noise, a per-axis gyro bias with a slow random walk, a small accelerometer bias,
int16 quantisation at the chip's sensitivities; the sensor is mounted on the pelvis with a small
random tilt (and optional yaw, i.e. sitting toward the side of the pelvis); frames can be dropped
at random (`loss`) as a radio would; `imu_fault_at_s` makes the chip stop answering.

Truth CSV columns (one row per sample, written as its frame is sent or dropped):
  seq            sample sequence number (as in the data frames)
  t_device_us    device timestamp of the sample as the host computes it (frame time + i / rate)
  t_true_s       true time since streaming started
  obliquity_deg  true pelvic obliquity, positive = left side high (docs/conventions.md)
  forward_tilt_deg  true forward lean of the pelvis, positive = forward
  rep            rep index (0-based) the sample belongs to, -1 outside reps
  sent           1 if the frame carrying this sample was sent, 0 if dropped by simulated loss
  phase          still | bend | settle | rep | end (firmware_sim.motion: calibration bends are not reps)
  t_mono_s       the same instant on this machine's time.monotonic() (the clock every process shares),
                 once a link has started the scenario clock (`wall_clock`); empty before/in-process
"""
from __future__ import annotations

import math
import struct

import numpy as np

from .firmware import core
from .lsm6ds3 import SimLSM6DS3TRC
from .motion import Scenario, rot_x, rot_y, rot_z

G_MS2 = 9.80665
FW_VERSION = core.FW_VERSION
ACC_RANGE_G = core.ACC_RANGE_G
GYR_RANGE_DPS = core.GYR_RANGE_DPS
ACC_G_PER_LSB = core.ACC_G_PER_LSB
GYR_DPS_PER_LSB = core.GYR_DPS_PER_LSB
RATES_HZ = core.RATES_HZ
SEQ_MODULO = core.SEQ_MODULO
POLL_S = 0.002          # the firmware's main loop period (true time)
ODR_ERROR_MAX = 0.025   # default oscillator error: uniform within +-2.5 %

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


class _ChipBus:
    """The I2C bus as the core sees it, wired to the simulated chip."""

    def __init__(self, chip: SimLSM6DS3TRC):
        self.chip = chip

    def read_into(self, reg: int, buf) -> None:
        self.chip.read_into(reg, buf)

    def write(self, reg: int, data: bytes) -> None:
        self.chip.write(reg, data)


class SimDevice:
    def __init__(self, scenario: Scenario, rate_hz: int = core.DEFAULT_RATE_HZ,
                 samples_per_frame: int = 4, seed: int = 0, clock_ppm: float | None = None,
                 mount_yaw_deg: float = 0.0, mount_tilt_deg: float | None = None, noise: float = 1.0,
                 loss: float = 0.0, history_s: float = 10.0, truth_file=None,
                 odr_error: float | None = None, boot_us: int | None = None,
                 imu_fault_at_s: float | None = None, info_every_s: float = 0.0):
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be a fraction from 0 to below 1")
        self.scenario = scenario
        self.rng = np.random.default_rng(seed)
        self.clock_ppm = float(self.rng.uniform(-50, 50) if clock_ppm is None else clock_ppm)
        self.odr_error = float(self.rng.uniform(-ODR_ERROR_MAX, ODR_ERROR_MAX)
                               if odr_error is None else odr_error)
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
        # device up-time at start; the counter is 32 bits, so it wraps every 71.6 minutes
        self.boot_us = int(self.rng.integers(1_000_000, 50_000_000)) if boot_us is None else int(boot_us)
        self.history_s = history_s
        self.imu_fault_at_s = imu_fault_at_s
        self.chip = SimLSM6DS3TRC(self._readings, odr_error=self.odr_error,
                                  end_s=scenario.duration_s)
        self.fw = core.Firmware(_ChipBus(self.chip), max_spf=samples_per_frame, rate_hz=rate_hz,
                                history_samples=int(history_s * max(RATES_HZ)) + 1,
                                info_every_us=int(info_every_s * 1e6))
        self.fw.set_link(1 << 16)  # serial: no payload limit below 255 samples
        self.t_s = 0.0
        self._next_new_seq = 0   # sequence number of the next sample the firmware has not yet sent
        self._truth_t: list[float] = []
        self.sent_frames = 0
        self.dropped_frames = 0
        self.truth_file = truth_file
        self.wall_clock: tuple[float, float] | None = None  # (monotonic at t_true 0, speed)
        self._t_jump_us = 0      # fault (jump_clock): added to the stamp of every DATA frame sent
        if truth_file is not None:
            truth_file.write("seq,t_device_us,t_true_s,obliquity_deg,forward_tilt_deg,rep,sent,phase,"
                             "t_mono_s\n")

    # ---- the board around the core
    def _counter(self, t_true_s: float) -> int:
        """The MCU's free-running 32-bit microsecond counter at true time t."""
        return int(self.boot_us + t_true_s * 1e6 * (1.0 + self.clock_ppm * 1e-6)) % (1 << 32)

    def _true_time_s(self, dev_us):
        return (np.asarray(dev_us) - self.boot_us) * 1e-6 / (1.0 + self.clock_ppm * 1e-6)

    def _readings(self, t_s: np.ndarray):
        """What the chip measures at true times t_s: the model's ideal readings plus sensor errors."""
        acc_g, gyr_dps = self.imu_readings(t_s)
        if self.noise:
            k = len(t_s)
            # gyro bias: a random walk, one step per reading
            steps = self.rng.normal(0, 0.002 * math.sqrt(1.0 / self.rate_hz), (k, 3)) * self.noise
            bias = self.gyr_bias_dps + np.cumsum(steps, axis=0)
            self.gyr_bias_dps = bias[-1]
            acc_g = acc_g + self.acc_bias_g + self.rng.normal(0, self.acc_noise_g, (k, 3))
            gyr_dps = gyr_dps + bias + self.rng.normal(0, self.gyr_noise_dps, (k, 3))
        return acc_g, gyr_dps

    # ---- what the host sees (all frames come from the core)
    @property
    def rate_hz(self) -> int:
        return self.fw.rate_hz

    @property
    def samples_per_frame(self) -> int:
        return self.fw.spf

    @property
    def streaming(self) -> bool:
        return self.fw.streaming

    @streaming.setter
    def streaming(self, on: bool) -> None:
        """In-process users switch streaming on directly, as START would (without its reply)."""
        if on and not self.fw.streaming:
            self.fw.handle_command(struct.pack("<BB", 1, core.CMD_START), self._counter(self.t_s))
        elif not on:
            self.fw.disconnected()

    def info_frame(self) -> bytes:
        return self.fw.info_frame()

    def stop_frame(self) -> bytes:
        """Sent by the device when the scenario is over: streaming stopped."""
        return core.encode_stop()

    def jump_clock(self, by_s: float) -> None:
        """Make the device time stamps jump by `by_s` (negative = back), as a firmware whose clock
        was reset would; true time and the sample numbering go on unchanged. A fault put on the
        stamps the core sends: the core itself never lets them jump (its `Clock` extends the counter
        monotonically and `SampleClock` never steps back), so a jumping counter would not show."""
        self._t_jump_us += int(round(by_s * 1e6))

    def jump_seq(self, by: int) -> list[bytes]:
        """Make the sample numbering jump by `by` (mod 2^32) from the next frame on, as a firmware
        bug would; the clock runs on. The partial frame goes out first, under the old numbering."""
        frames = self._outgoing(self.fw.flush())
        self.fw.seq = (self.fw.seq + by) % SEQ_MODULO
        self._next_new_seq = self.fw.seq
        return frames

    def reboot(self, up_s: float = 0.3) -> list[bytes]:
        """The board restarts: a fresh firmware core (numbering from 0, empty resend buffer, chip
        reset), the counter from `up_s` of up-time. The host's START is not repeated, so the
        reboot goes on streaming as the old one did; returns what the new core sends (its INFO)."""
        self.boot_us = int(up_s * 1e6 - self.t_s * 1e6 * (1.0 + self.clock_ppm * 1e-6))
        old = self.fw
        self.fw = core.Firmware(_ChipBus(self.chip), max_spf=old.max_spf, rate_hz=old.rate_hz,
                                history_samples=old.history_samples, info_every_us=old.info_every_us)
        self.fw.spf, self.fw.flush_us = old.spf, old.flush_us  # the same link, already set up
        self.chip.delivered_t.clear()  # what the old core read and never sent is gone with it
        self._next_new_seq = 0
        start = self.fw.handle_command(struct.pack("<BB", 1, core.CMD_START), self._counter(self.t_s))
        return self._outgoing(start)

    def stall(self) -> None:
        """The chip stops sampling (it still answers on the bus): no more samples; the firmware
        goes on, so INFO still comes once a second over serial."""
        self.chip.end_s = min(self.chip.end_s, self.chip.t_s)

    def set_samples_per_frame(self, n: int) -> None:
        """The link carries at most n samples per frame (BLE: fitted to the ATT MTU)."""
        self.fw.set_link(core.DATA_HEADER_BYTES + core.SAMPLE_BYTES * max(1, min(255, n)))

    def handle_command(self, frame_bytes: bytes) -> list[bytes]:
        """A command frame from the host; returns the frames the firmware sends back."""
        return self._outgoing(self.fw.handle_command(bytes(frame_bytes), self._counter(self.t_s)))

    def resend_from(self, seq: int) -> list[bytes]:
        return self.fw.resend_from(seq)

    @property
    def finished(self) -> bool:
        return self.chip.finished and not self.fw._pending_n and self.t_s > self.scenario.duration_s

    def frames_due(self, t_true_s: float) -> list[bytes]:
        """Run the firmware's loop up to true time t_true_s; the frames it sent, less those lost on
        the way (simulated loss: kept in the firmware's history, not returned)."""
        out = []
        while self.t_s < t_true_s:
            self.t_s = min(t_true_s, self.t_s + POLL_S)
            if self.imu_fault_at_s is not None and self.t_s >= self.imu_fault_at_s:
                self.chip.answering = False
            self.chip.advance(self.t_s)
            now = self._counter(self.t_s)
            frames = self.fw.poll(now)
            if self.chip.finished and self.t_s > self.scenario.duration_s:
                frames += self.fw.flush()  # the set is over: the last partial frame goes now
            out += self._outgoing(frames)
        return out

    def _outgoing(self, frames: list[bytes]) -> list[bytes]:
        """Frames leaving the firmware: new samples get their truth rows; loss drops some."""
        out = []
        for frame in frames:
            if self._t_jump_us and frame[1] == core.DATA:
                frame = bytearray(frame)
                t_us = struct.unpack_from("<Q", frame, 6)[0]
                struct.pack_into("<Q", frame, 6, (t_us + self._t_jump_us) % (1 << 64))
                frame = bytes(frame)
            new = frame[1] == core.DATA and struct.unpack_from("<I", frame, 2)[0] == self._next_new_seq
            if not new:
                out.append(frame)  # info, stop, fault, resent data: never dropped here
                continue
            lost = bool(self.loss) and self.rng.random() < self.loss
            if lost:
                self.dropped_frames += 1
            else:
                self.sent_frames += 1
                out.append(frame)
            seq, t_us, n = struct.unpack_from("<IQB", frame, 2)
            self._next_new_seq = (seq + n) % SEQ_MODULO
            self._write_truth(seq, t_us, n, sent=not lost)
        return out

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

    def _write_truth(self, seq0: int, t_us: int, n: int, sent: bool) -> None:
        delivered = self.chip.delivered_t
        t = np.array(delivered[:n])
        del delivered[:n]
        if self.truth_file is None or not len(t):
            return
        period_us = 1e6 / self.rate_hz
        dev_us = t_us + np.round(np.arange(n) * period_us).astype(np.int64)
        obl, lean, _ = self.scenario.angles_deg(t)
        # the exact obliquity/lean of the model's rotation (lean is exact only at zero obliquity)
        R, _ = self.scenario.pelvis(t)
        fwd_elev = np.degrees(np.arcsin(np.clip(R[:, 2, 0], -1, 1)))
        reps = self.scenario.rep_index(t)
        phases = self.scenario.phase_names(t)
        if self.wall_clock is None:
            mono = [""] * len(t)
        else:
            t0, speed = self.wall_clock
            mono = [f"{t0 + x / speed:.6f}" for x in t]
        lines = [f"{(seq0 + i) % SEQ_MODULO},{int(dev_us[i])},{t[i]:.6f},{obl[i]:.5f},"
                 f"{-fwd_elev[i]:.5f},{reps[i]},{int(sent)},{phases[i]},{mono[i]}\n"
                 for i in range(len(t))]
        self.truth_file.write("".join(lines))
