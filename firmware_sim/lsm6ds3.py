"""A simulated LSM6DS3TR-C at register level, as far as the firmware core's driver uses it.

In: register writes and reads from the firmware core (hardware/firmware/hiplevel_core.py,
`LSM6DS3TRC`) through the same `bus` interface code.py gives it over I2C (`read_into(register,
buffer)`, `write(register, data)`), and `advance(t_true_s)`: true time moves on, and the chip takes
the samples due by then. Out: the register values, above all the FIFO.

What it models: WHO_AM_I (0x6A); CTRL1_XL/CTRL2_G output data rate and full scale (the FIFO is
filled at the ODR of FIFO_CTRL5 in continuous mode); the real ODRs 52/104/208/416 Hz, run by an
oscillator `odr_error` off nominal (the datasheet's ODR is nominal; the internal oscillator is not
exact); samples from `source(t_true_s) -> (acc_g, gyr_dps)` quantised at the configured
sensitivities (0.061/0.122/0.244/0.488 mg/LSB, 8.75/17.5/35/70 mdps/LSB) and clipped to int16;
the FIFO as words in the pattern gyro x, y, z, accel x, y, z with FIFO_STATUS1-4 (unread words,
overrun, next pattern word), 4 KiB (2048 words; on overflow the oldest whole sample is
overwritten and OVER_RUN set until the next status read); FIFO_DATA_OUT_L/H burst reads that roll
back from _H to _L. A chip that stops answering (`answering = False`) raises OSError like a
NACKed I2C transfer. Not modelled: decimation other than none, the timestamp and pedometer data
sets, interrupts, the embedded functions, the turn-on time (the first sample comes one period after the
ODR is set).
"""
from __future__ import annotations

import collections
import struct

import numpy as np

WHO_AM_I_VALUE = 0x6A
ODR_HZ = {0x3: 52, 0x4: 104, 0x5: 208, 0x6: 416, 0x1: 12.5, 0x2: 26, 0x7: 833, 0x8: 1666}
ACC_G_PER_LSB = {0b00: 0.000061, 0b10: 0.000122, 0b11: 0.000244, 0b01: 0.000488}  # FS_XL
GYR_DPS_PER_LSB = {0b00: 0.00875, 0b01: 0.0175, 0b10: 0.035, 0b11: 0.070}          # FS_G
FIFO_WORDS = 2048


class SimLSM6DS3TRC:
    FIFO_CTRL5, CTRL1_XL, CTRL2_G, CTRL3_C = 0x0A, 0x10, 0x11, 0x12
    FIFO_STATUS1, FIFO_DATA_OUT_L = 0x3A, 0x3E
    BLOCK = 256

    def __init__(self, source, odr_error: float = 0.0, end_s: float = float("inf")):
        self.source = source
        self.odr_error = odr_error          # fraction: +0.02 = samples 2 % faster than nominal
        self.end_s = end_s                  # no sample is taken after this true time
        self.answering = True
        self.regs = bytearray(128)
        self.regs[0x0F] = WHO_AM_I_VALUE
        self.regs[self.CTRL3_C] = 0x04
        self.fifo: collections.deque[int] = collections.deque()  # words, oldest first
        self.fifo_t: collections.deque[float] = collections.deque()  # true time of each whole sample
        self.delivered_t: list[float] = []  # true times of the samples read out, in order
        self.overrun = False
        self.overwritten = 0
        self.t_s = 0.0
        self._next_sample_s: float | None = None
        self._words_out = 0                 # words of the current sample read so far
        self._pending_word: int | None = None  # second byte of a half-read word
        self._block = None                  # samples computed ahead: (true times, FIFO words)
        self._block_i = 0                   # the next of them to take
        self._update_period()

    # ---- configuration derived from the registers
    def _fifo_rate(self) -> float:
        mode = self.regs[self.FIFO_CTRL5] & 0x7
        if mode != 0x6:
            return 0.0
        code = (self.regs[self.FIFO_CTRL5] >> 3) & 0xF
        odr_xl = ODR_HZ.get(self.regs[self.CTRL1_XL] >> 4, 0.0)
        odr_g = ODR_HZ.get(self.regs[self.CTRL2_G] >> 4, 0.0)
        rate = ODR_HZ.get(code, 0.0)
        return rate if odr_xl >= rate and odr_g >= rate else 0.0

    @property
    def period_s(self) -> float:
        return self._period_s

    def _update_period(self) -> None:  # after every register write (read on every advance)
        rate = self._fifo_rate()
        self._period_s = 1.0 / (rate * (1.0 + self.odr_error)) if rate else float("inf")

    # ---- time
    def advance(self, t_true_s: float) -> None:
        """True time is now t_true_s: take every sample due by then."""
        period = self.period_s
        if self._next_sample_s is None and period != float("inf"):
            self._next_sample_s = self.t_s + period  # the first sample ends the first period
        self.t_s = max(self.t_s, t_true_s)
        if self._next_sample_s is None:
            return
        end = min(self.t_s, self.end_s)
        if self._next_sample_s > end:
            return
        k = int((end - self._next_sample_s) // period) + 1
        t, words = self._take(k, period)
        self.fifo.extend(words)
        self.fifo_t.extend(t)
        while len(self.fifo) > FIFO_WORDS:  # continuous mode: the newest overwrites the oldest
            for _ in range(6):
                self.fifo.popleft()
            self.fifo_t.popleft()
            self.overrun = True
            self.overwritten += 1

    def _take(self, k: int, period: float) -> tuple[list[float], list[int]]:
        """The next k samples' true times and FIFO words. The motion is scripted, so readings are
        computed and quantised a block ahead (numpy once per BLOCK samples, not per FIFO read)."""
        i = self._block_i
        if self._block is not None and (len(self._block[0]) - i < k or self._block[0][i] != self._next_sample_s):
            self._block = None
        if self._block is None:
            n = max(k, self.BLOCK)
            t = self._next_sample_s + period * np.arange(n)
            acc_g, gyr_dps = self.source(t)
            acc_lsb = ACC_G_PER_LSB[(self.regs[self.CTRL1_XL] >> 2) & 0x3]
            gyr_lsb = GYR_DPS_PER_LSB[(self.regs[self.CTRL2_G] >> 2) & 0x3]
            acc = np.clip(np.round(acc_g / acc_lsb), -32768, 32767).astype(np.int64)
            gyr = np.clip(np.round(gyr_dps / gyr_lsb), -32768, 32767).astype(np.int64)
            words = np.concatenate([gyr, acc], axis=1).ravel().tolist()  # pattern: G xyz, XL xyz
            self._block = (t.tolist(), words)
            i = self._block_i = 0
        t_all, words = self._block
        self._block_i = i + k
        self._next_sample_s = t_all[i + k] if i + k < len(t_all) else t_all[i + k - 1] + period
        return t_all[i:i + k], words[6 * i:6 * (i + k)]

    @property
    def finished(self) -> bool:
        """Past the end: no sample will be taken any more (whatever is in the FIFO stays)."""
        return self._next_sample_s is not None and self._next_sample_s > self.end_s

    # ---- the bus
    def _check(self) -> None:
        if not self.answering:
            raise OSError(19, "No such device")  # what CircuitPython's busio raises on a NACK

    def write(self, reg: int, data: bytes) -> None:
        self._check()
        for i, value in enumerate(data):
            r = reg + i
            if r == self.CTRL3_C and value & 0x01:  # SW_RESET: registers to their defaults
                self.regs[:] = bytes(128)
                self.regs[0x0F] = WHO_AM_I_VALUE
                self.regs[self.CTRL3_C] = 0x04
                self._update_period()
                self._stop_fifo()
                continue
            was_rate = self._fifo_rate()
            self.regs[r] = value
            if r in (self.CTRL1_XL, self.CTRL2_G):
                self._block = None  # words computed ahead used the old full scale
            self._update_period()
            if r == self.FIFO_CTRL5 and value & 0x7 == 0:  # bypass mode empties the FIFO
                self._stop_fifo()
            elif self._fifo_rate() != was_rate:  # ODR changed: a new sample train
                self._next_sample_s = None if self._fifo_rate() == 0 else self.t_s + self.period_s

    def _stop_fifo(self) -> None:
        self.fifo.clear()
        self.fifo_t.clear()
        self._next_sample_s = None
        self._words_out = 0
        self._pending_word = None

    def read_into(self, reg: int, buf) -> None:
        self._check()
        n = len(buf)
        if reg == self.FIFO_STATUS1:
            words = len(self.fifo)
            pattern = self._words_out % 6
            status = [words & 0xFF, ((words >> 8) & 0x07) | (0x40 if self.overrun else 0)
                      | (0x10 if not words else 0), pattern & 0xFF, (pattern >> 8) & 0x03]
            self.overrun = False
            for i in range(n):
                buf[i] = status[i] if i < 4 else 0
            return
        if reg == self.FIFO_DATA_OUT_L:  # the address rolls back from _H to _L
            i = 0
            if n and self._pending_word is not None:
                buf[0] = self._fifo_byte()
                i = 1
            k = min((n - i) // 2, len(self.fifo))  # whole words, at once
            if k:
                words = [self.fifo.popleft() & 0xFFFF for _ in range(k)]
                buf[i:i + 2 * k] = struct.pack(f"<{k}H", *words)
                sets_before = self._words_out // 6
                self._words_out += k
                for _ in range(self._words_out // 6 - sets_before):
                    self.delivered_t.append(self.fifo_t.popleft())
                i += 2 * k
            for j in range(i, n):
                buf[j] = self._fifo_byte()
            return
        for i in range(n):
            buf[i] = self.regs[(reg + i) % 128]

    def _fifo_byte(self) -> int:
        if self._pending_word is not None:
            b, self._pending_word = self._pending_word, None
            return b
        if not self.fifo:
            return 0  # an empty FIFO reads zeros
        word = self.fifo.popleft() & 0xFFFF
        self._words_out += 1
        if self._words_out % 6 == 0:
            self.delivered_t.append(self.fifo_t.popleft())
        self._pending_word = word >> 8
        return word & 0xFF
