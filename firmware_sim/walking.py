"""Kinematic model of the pelvis walking (`hiplevel sim --exercise walk`): the simulator's truth for gait.

`WalkScenario` has the interface firmware_sim.device.SimDevice samples (like motion.Scenario):
`pelvis(t_s)` -> (R pelvis->earth (n,3,3), position m (n,3)), `angles_deg(t_s)` -> (obliquity,
forward lean, heading), `rep_index(t_s)` (here: the step index, -1 outside steps), `phase_names(t_s)`
(still | walk | turn | end) and `duration_s`. `steps_truth()` lists every step: index, stance foot,
true contact time, end time, true swing-side drop, turning.

Timeline: `still_s` standing still, one step of setting off (speed and the oscillations fade in),
then `steps` steps of `step_s` each (stance foot alternating, the right foot first), with a U-turn of
`turn_steps` steps after every `straight_steps` steps when `turns`, one step of stopping, and
`end_still_s` standing. A step runs from one initial contact (the stance foot's) to the next. With
`pause_s`, the walker slows to a stop over one step halfway, stands for `pause_s` and sets off again
over one step (phase "pause"; the steps after it are bout 2 in the truth).

Per step, with u = 0..1 the phase within the step:
- Frontal plane: the swing side (opposite the stance foot) drops by D * sin^2(pi u) (zero at both
  contacts, deepest mid-step). normal: D = 3 + 1.5 * speed (4.8 deg at 1.2 m/s) +- 0.3;
  trendelenburg: on the steps where the weak side is the stance leg D = 8.5..11.5 deg, the others
  normal; compensated: the trunk leans over the stance leg, so the swing side dips ~2 deg at loading
  and then rises ~3 deg (a "rise on the swing side").
- Vertical: the trunk is lowest just after the contact (u = 0.05) and highest in mid-stance, 4 cm
  apart: its upward acceleration peaks ~0.03 s after the contact (at 1.2 m/s about 0.28 g).
- Forward: fastest at the lowest point (the inverted pendulum), +-10 % of the speed.
- Side to side: the pelvis moves 2 cm toward the stance foot and back within each step.
- Pelvic rotation: +-4 deg about the vertical, the swing side coming forward.
- Turns: the walking direction turns by 180 deg at a constant rate over the turn steps (eased over
  0.2 s at each end); the path is a circle arc, so the sacrum feels the centripetal acceleration.
True drop of a step: the largest drop of the swing side within single support, taken (as the host
does) as the last 80 % of the step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline

from .motion import min_jerk, rot_x, rot_y, rot_z

GAITS = ("normal", "trendelenburg", "compensated")
SINGLE_SUPPORT_FROM = 0.2  # share of the step before the other foot leaves the ground


@dataclass
class WalkScenario:
    gait: str = "normal"
    weak_side: str = "right"
    speed_mps: float = 1.2
    steps: int = 20
    turns: bool = False
    straight_steps: int = 10
    turn_steps: int = 4
    still_s: float = 3.0
    end_still_s: float = 1.5
    pause_s: float = 0.0       # stand still this long halfway (after steps // 2, or mid first straight), then walk on
    seed: int = 0
    exercise: str = "walk"
    stance: str = "left"       # unused (exercise scenarios' field; the stance alternates here)
    drops: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        if self.gait not in GAITS:
            raise ValueError(f"unknown gait {self.gait!r}; choose from {', '.join(GAITS)}")
        if self.weak_side not in ("left", "right"):
            raise ValueError("the weak side is left or right")
        if not 0.4 <= self.speed_mps <= 2.0:
            raise ValueError("walking speed must be within 0.4..2.0 m/s")
        if self.steps < 2:
            raise ValueError("a walk needs at least 2 steps")
        self.step_s = (0.36 + 0.24 * self.speed_mps) / self.speed_mps
        # the sequence of steps: straight ones, and U-turns in between when asked
        kinds = []
        done = 0
        while done < self.steps:
            n = min(self.straight_steps, self.steps - done) if self.turns else self.steps
            kinds += ["walk"] * n
            done += n
            if self.turns and done < self.steps:
                kinds += ["turn"] * self.turn_steps
        self.kinds = kinds
        self.n_steps = len(kinds)
        self.t_first_contact = self.still_s + self.step_s  # one step of setting off
        # Times of the gait cycle run on a "walk clock" that stops during the pause: tau(t).
        self._contacts_tau = self.t_first_contact + self.step_s * np.arange(self.n_steps + 1)
        self.pause_at = None
        if self.pause_s > 0:
            self.pause_at = (self.straight_steps if self.turns else self.steps) // 2
            if not 2 <= self.pause_at <= self.n_steps - 2:
                raise ValueError("a pause needs at least 4 steps")
        self._tau_p = self._contacts_tau[self.pause_at] if self.pause_at is not None else math.inf
        # contact k in real time; the contact that starts the walk again after the pause is its end
        self.contacts_s = np.array([self._real(tk) for tk in self._contacts_tau])
        self.feet = ["right" if k % 2 == 0 else "left" for k in range(self.n_steps)]  # stance foot of step k
        rng = np.random.default_rng(self.seed)
        normal = 3.0 + 1.5 * self.speed_mps
        self.drops = []
        for k in range(self.n_steps):
            if self.gait == "trendelenburg" and self.feet[k] == self.weak_side:
                self.drops.append(float(rng.uniform(8.5, 11.5)))
            elif self.gait == "compensated":
                self.drops.append(0.0)
            else:
                self.drops.append(float(normal + rng.uniform(-0.3, 0.3)))
        self.t_walk_end = self.contacts_s[-1] + self.step_s
        self._build_path()

    def _real(self, tau: float, after: bool = True) -> float:
        return tau + self.pause_s if tau > self._tau_p or (tau == self._tau_p and after) else tau

    def _tau(self, t):
        """The walk clock: real time, held still during the pause."""
        t = np.asarray(t, float)
        p = self._tau_p
        return np.where(t < p, t, np.where(t < p + self.pause_s, p, t - self.pause_s))

    # ---- timeline ----
    @property
    def duration_s(self) -> float:
        return self.t_walk_end + self.end_still_s

    def _step_phase(self, t):
        """(step index incl. the virtual setting-off -1 and stopping n_steps, phase u 0..1)."""
        x = (self._tau(t) - self.t_first_contact) / self.step_s
        k = np.floor(x).astype(int)
        return k, x - k

    def rep_index(self, t_s) -> np.ndarray:
        k, _ = self._step_phase(t_s)
        return np.where((k >= 0) & (k < self.n_steps), k, -1)

    def phase_names(self, t_s) -> np.ndarray:
        t = np.asarray(t_s, float)
        k = self.rep_index(t)
        kinds = np.array(self.kinds + ["walk"])
        names = np.where(k >= 0, kinds[k], "walk")
        names = np.where((t >= self._tau_p) & (t < self._tau_p + self.pause_s), "pause", names)
        return np.where(t < self.still_s, "still", np.where(t >= self.t_walk_end, "end", names))

    def _envelope(self, t):
        """0 standing, 1 walking: fades in over the setting-off step and out over the stopping one."""
        t = np.asarray(t, float)
        env = min_jerk((t - self.still_s) / self.step_s) * (1.0 - min_jerk((t - self.contacts_s[-1]) / self.step_s))
        if self.pause_at is not None:  # slowing to a stop over the step before the pause, setting off after it
            p, T = self._tau_p, self.step_s
            env = env * np.where(t < p, 1.0 - min_jerk((t - (p - T)) / T), min_jerk((t - p - self.pause_s) / T))
        return env

    # ---- the walking direction and the path ----
    def _build_path(self):
        dt = 0.001
        t = np.arange(-1.0, self.duration_s + 1.0, dt)
        rate = np.zeros_like(t)
        k, _ = self._step_phase(t)
        for start in [i for i, kind in enumerate(self.kinds) if kind == "turn" and (i == 0 or self.kinds[i - 1] != "turn")]:
            t0 = self.contacts_s[start]
            t1 = self.contacts_s[start + self.turn_steps]
            ease = 0.2
            w = min_jerk((t - t0) / ease) * (1.0 - min_jerk((t - (t1 - ease)) / ease))
            rate += w * math.pi / ((t1 - t0) - ease)  # eased edges: the whole turn is still 180 deg
        heading = np.cumsum(rate) * dt
        speed = self.speed_mps * self._envelope(t)
        # forward speed oscillates with the step (fastest at the lowest point, u = 0.05)
        kk, u = self._step_phase(t)
        speed = speed * (1.0 + 0.1 * np.cos(2 * np.pi * (u - 0.05)))
        vel = np.stack([speed * np.cos(heading), speed * np.sin(heading)], -1)
        pos = np.cumsum(vel, axis=0) * dt
        self._heading = CubicSpline(t, heading)
        self._path = CubicSpline(t, pos)

    # ---- the pelvis ----
    def _swing_drop(self, k, u):
        """Drop of the swing side (deg) for step indices k and phases u (0 outside real steps)."""
        drops = np.asarray(self.drops + [0.0])[np.where((k >= 0) & (k < self.n_steps), k, -1)]
        real = (k >= 0) & (k < self.n_steps)
        if self.gait == "compensated":
            dip = 2.0 * np.where(u < 0.6, np.sin(np.pi * u / 0.6) ** 2, 0.0)
            rise = 3.0 * np.where(u > 0.45, np.sin(np.pi * (u - 0.45) / 0.55) ** 2, 0.0)
            return np.where(real, dip - rise, 0.0)
        return np.where(real, drops * np.sin(np.pi * u) ** 2, 0.0)

    def _stance_sign(self, k):
        """+1 while the left foot is the stance foot (step index odd), -1 for the right."""
        return np.where(k % 2 == 1, 1.0, -1.0)

    def angles_deg(self, t_s):
        t = np.asarray(t_s, float)
        k, u = self._step_phase(t)
        s = self._stance_sign(k)
        # stance left -> swing right; a right drop is positive obliquity
        env = self._envelope(t)
        obliquity = s * self._swing_drop(k, u) * env
        lean = env * (2.0 + 1.0 * np.sin(2 * np.pi * u))
        # pelvic rotation: at a left contact the left side is forward (turned right, negative)
        rotation = env * 4.0 * s * -np.cos(np.pi * u)
        heading = np.degrees(self._heading(t)) + rotation
        return obliquity, lean, heading

    def pelvis(self, t_s):
        t = np.asarray(t_s, float)
        obl, lean, heading = (np.radians(a) for a in self.angles_deg(t))
        R = rot_z(heading) @ rot_x(obl) @ rot_y(lean)
        k, u = self._step_phase(t)
        env = self._envelope(t)
        s = self._stance_sign(k)
        walk_dir = self._heading(t)
        lateral = env * 0.02 * s * np.sin(np.pi * u)  # toward the stance foot (+ = left)
        pos = np.zeros(t.shape + (3,))
        xy = self._path(t)
        pos[..., 0] = xy[..., 0] - np.sin(walk_dir) * lateral
        pos[..., 1] = xy[..., 1] + np.cos(walk_dir) * lateral
        pos[..., 2] = -env * 0.02 * np.cos(2 * np.pi * (u - 0.05))
        return R, pos

    # ---- truth per step ----
    def steps_truth(self) -> list[dict]:
        out = []
        for k in range(self.n_steps):
            t0 = self._real(self._contacts_tau[k], after=True)
            t1 = self._real(self._contacts_tau[k + 1], after=False)
            tt = np.linspace(t0 + SINGLE_SUPPORT_FROM * (t1 - t0), t1, 400)
            obl, _, _ = self.angles_deg(tt)
            swing = "left" if self.feet[k] == "right" else "right"
            drop = obl if swing == "right" else -obl
            heading = np.degrees(self._heading(np.array([t0, t1])))
            out.append({"step": k, "foot": self.feet[k], "swing_side": swing, "contact_s": round(float(t0), 4),
                        "end_s": round(float(t1), 4), "drop_deg": round(float(drop.max()), 3),
                        "turning": self.kinds[k] == "turn",
                        "bout": 1 if self.pause_at is None or k < self.pause_at else 2,
                        "heading_change_deg": round(float(heading[1] - heading[0]), 1)})
        return out

    def write_steps_truth(self, path: str) -> None:
        cols = ["step", "foot", "swing_side", "contact_s", "end_s", "drop_deg", "turning", "bout",
                "heading_change_deg"]
        with open(path, "w") as f:
            f.write(",".join(cols) + "\n")
            for s in self.steps_truth():
                f.write(",".join(str(int(s[c]) if c == "turning" else s[c]) for c in cols) + "\n")


def add_walk_arguments(p) -> None:
    """The `hiplevel sim --exercise walk` options (firmware_sim.cli)."""
    g = p.add_argument_group("walking (--exercise walk)")
    g.add_argument("--gait", choices=GAITS, default="normal")
    g.add_argument("--weak-side", choices=("left", "right"), default="right",
                   help="trendelenburg: the hip whose abductors are weak (the other side drops while it is the stance leg)")
    g.add_argument("--speed-mps", type=float, default=1.2, metavar="V", help="walking speed, m/s (default 1.2)")
    # --steps N (straight steps, default 20) is shared with --programme's (firmware_sim.cli)
    g.add_argument("--turns", action="store_true", help="a U-turn of 4 steps after every 10 straight steps")
    g.add_argument("--pause", type=float, default=0.0, metavar="S",
                   help="stop and stand for S seconds halfway, then walk on (a new walking bout)")


def walk_scenario(args) -> WalkScenario:
    """The scenario from the command line; `--truth FILE` also gets FILE.steps.csv (steps_truth)."""
    return WalkScenario(gait=args.gait, weak_side=args.weak_side, speed_mps=args.speed_mps, steps=20 if args.steps is None else args.steps,
                        turns=args.turns, pause_s=args.pause, seed=args.seed)
