"""A small SVG chart library for the HTML reports: a few lines of geometry, nothing to fetch.

In: data coordinates (numpy arrays or lists). Out: SVG text for inline use. `Chart` draws axes with
"nice" ticks, lines, bands, bars and labels; `envelope` thins a long curve to min/max per bucket so
every peak survives; `RowEnvelopes` does the same while the curve streams in (one sample at a time,
as a replay gives them), for a curve drawn as rows of a fixed time span, holding a bounded number of
points however long the curve is.
"""
from __future__ import annotations

import html
import math
from array import array

import numpy as np

GRID_COLOR = "#e3e3e3"


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def nice_step(span: float, target: int = 6) -> float:
    if not span > 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    step = nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt_tick(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-9 else "0"


class Chart:
    """An x-y chart in SVG user units; add shapes in data coordinates, then `svg()`."""

    def __init__(self, x_range, y_range, width=960, height=260, x_label="", y_label="",
                 margin=(52, 14, 22, 40)):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.w, self.h = width, height
        self.ml, self.mr, self.mt, self.mb = margin
        self.x_label, self.y_label = x_label, y_label
        self.under: list[str] = []   # bands, drawn below the grid lines' labels
        self.over: list[str] = []
        self.x_ticks: list[tuple[float, str]] | None = None

    def px(self, x):
        return self.ml + (x - self.x0) / (self.x1 - self.x0 or 1) * (self.w - self.ml - self.mr)

    def py(self, y):
        return self.mt + (self.y1 - y) / (self.y1 - self.y0 or 1) * (self.h - self.mt - self.mb)

    def band(self, xa, xb, color, title=""):
        xa, xb = max(xa, self.x0), min(xb, self.x1)
        if xb <= xa:
            return
        self.under.append(f'<rect x="{self.px(xa):.1f}" y="{self.mt}" width="{max(0.8, self.px(xb) - self.px(xa)):.1f}" '
                          f'height="{self.h - self.mt - self.mb}" fill="{color}" fill-opacity="0.35">'
                          f'<title>{esc(title)}</title></rect>')

    def hline(self, y, color, dash="6 4", label=""):
        if not self.y0 <= y <= self.y1:
            return
        self.over.append(f'<line x1="{self.ml}" x2="{self.w - self.mr}" y1="{self.py(y):.1f}" y2="{self.py(y):.1f}" '
                         f'stroke="{color}" stroke-width="1.3" stroke-dasharray="{dash}"/>')
        if label:
            self.over.append(f'<text x="{self.w - self.mr - 4}" y="{self.py(y) - 4:.1f}" text-anchor="end" '
                             f'fill="{color}">{esc(label)}</text>')

    def vline(self, x, color, label=""):
        if not self.x0 <= x <= self.x1:
            return
        self.over.append(f'<line x1="{self.px(x):.1f}" x2="{self.px(x):.1f}" y1="{self.mt}" y2="{self.h - self.mb}" '
                         f'stroke="{color}" stroke-width="1.5"><title>{esc(label)}</title></line>')
        if label:
            self.over.append(f'<text x="{self.px(x) + 3:.1f}" y="{self.mt + 11}" fill="{color}">{esc(label)}</text>')

    def line(self, xs, ys, color, width=1.4, dash=None, dots=False, title=""):
        pts = [(self.px(x), self.py(y)) for x, y in zip(xs, ys) if y is not None and not math.isnan(y)]
        if not pts:
            return
        d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.over.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{width}" '
                         f'stroke-linejoin="round"{extra}><title>{esc(title)}</title></polyline>')
        if dots:
            for x, y in pts:
                self.over.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{color}"/>')

    def bar(self, x, width, y_top, color, title=""):
        left, right = self.px(x - width / 2), self.px(x + width / 2)
        top, base = self.py(max(self.y0, min(self.y1, y_top))), self.py(max(self.y0, 0))
        self.over.append(f'<rect x="{left:.1f}" y="{min(top, base):.1f}" width="{right - left:.1f}" '
                         f'height="{abs(base - top):.1f}" fill="{color}"><title>{esc(title)}</title></rect>')

    def label(self, x, y, text, color="#333", anchor="middle"):
        self.over.append(f'<text x="{self.px(x):.1f}" y="{self.py(y):.1f}" text-anchor="{anchor}" '
                         f'fill="{color}">{esc(text)}</text>')

    def svg(self, title: str = "") -> str:
        parts = [f'<svg viewBox="0 0 {self.w} {self.h}" width="100%" role="img" aria-label="{esc(title)}">',
                 f'<rect x="{self.ml}" y="{self.mt}" width="{self.w - self.ml - self.mr}" '
                 f'height="{self.h - self.mt - self.mb}" fill="#fff" stroke="#999"/>']
        parts += self.under
        for v in ticks(self.y0, self.y1, 6):
            y = self.py(v)
            parts.append(f'<line x1="{self.ml}" x2="{self.w - self.mr}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{"#999" if abs(v) < 1e-9 else GRID_COLOR}" stroke-width="1"/>')
            parts.append(f'<text x="{self.ml - 5}" y="{y + 4:.1f}" text-anchor="end">{_fmt_tick(v)}</text>')
        xt = self.x_ticks if self.x_ticks is not None else [(v, _fmt_tick(v)) for v in ticks(self.x0, self.x1, 10)]
        for v, text in xt:
            x = self.px(v)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.h - self.mb}" y2="{self.h - self.mb + 4}" stroke="#666"/>')
            parts.append(f'<text x="{x:.1f}" y="{self.h - self.mb + 16}" text-anchor="middle">{esc(text)}</text>')
        if self.x_label:
            parts.append(f'<text x="{(self.ml + self.w - self.mr) / 2:.0f}" y="{self.h - 4}" '
                         f'text-anchor="middle" fill="#555">{esc(self.x_label)}</text>')
        if self.y_label:
            parts.append(f'<text transform="translate(13 {(self.mt + self.h - self.mb) / 2:.0f}) rotate(-90)" '
                         f'text-anchor="middle" fill="#555">{esc(self.y_label)}</text>')
        parts += self.over
        parts.append("</svg>")
        return "\n".join(parts)


def envelope(t: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2 * buckets points that keep every peak: min and max of each time bucket, in order."""
    ok = ~np.isnan(y)
    t, y = t[ok], y[ok]
    if len(t) <= 2 * buckets:
        return t, y
    edges = np.linspace(t[0], t[-1], buckets + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, buckets - 1)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    out_t, out_y = [], []
    for a, b in zip(starts, np.r_[starts[1:], len(t)]):
        seg = y[a:b]
        i, j = a + int(np.argmin(seg)), a + int(np.argmax(seg))
        for k in sorted({i, j}):
            out_t.append(t[k])
            out_y.append(y[k])
    return np.array(out_t), np.array(out_y)


class RowEnvelopes:
    """A curve streamed in with `add(t, y)`, thinned as it comes for plotting it as rows `row_s`
    wide: per row, the minimum and the maximum (with their times, to draw them in order) of each of
    `columns` equal time buckets, so what is held grows with the rows, not the samples. Until a
    point lies beyond `whole_s`, every point is kept too (`whole`): a curve that fits one row is
    drawn with `envelope` over its own span, which only its last point fixes. Also kept: the number
    of points, the last time and the largest |y| (NaN points count, as they do in arrays, but are
    never drawn)."""

    def __init__(self, row_s: float, columns: int, whole_s: float):
        self.row_s, self.columns, self.whole_s = float(row_s), int(columns), float(whole_s)
        self.bucket_s = self.row_s / self.columns
        self.n = 0
        self.end_t = math.nan
        self.max_abs_y = math.nan
        self.whole: tuple[array, array] | None = (array("d"), array("d"))
        self._rows: dict[int, np.ndarray] = {}   # row -> (columns, 4): t of min, min, t of max, max
        self._cell = None                        # the bucket being filled: [key, t_lo, lo, t_hi, hi]

    def add(self, t: float, y: float) -> None:
        self.n += 1
        self.end_t = t
        if self.whole is not None:
            if t > self.whole_s:
                self.whole = None                # too long for one row: the rows' buckets draw it
            else:
                self.whole[0].append(t)
                self.whole[1].append(y)
        if y != y:                               # NaN: never drawn (envelope() drops it)
            return
        if not abs(y) <= self.max_abs_y:         # also when max_abs_y is still NaN
            self.max_abs_y = abs(y)
        if t < 0.0:                              # before the first row starts: not drawn
            return
        row = int(t // self.row_s)
        col = min(self.columns - 1, int((t - row * self.row_s) / self.bucket_s))
        self._put(row * self.columns + col, t, y)
        if row and t == row * self.row_s:
            self._put(row * self.columns - 1, t, y)   # on a row's edge: the end of the row before too

    def _put(self, k: int, t: float, y: float) -> None:
        c = self._cell
        if c is None or c[0] != k:
            self._flush()
            self._cell = [k, t, y, t, y]         # samples come in time order: merge a bucket once
            return
        if y < c[2]:
            c[1], c[2] = t, y
        if y > c[4]:
            c[3], c[4] = t, y

    def _flush(self) -> None:
        c = self._cell
        if c is None:
            return
        row, col = divmod(c[0], self.columns)
        cells = self._rows.get(row)
        if cells is None:
            cells = self._rows[row] = np.full((self.columns, 4), np.nan)   # times NaN: empty
            cells[:, 1], cells[:, 3] = np.inf, -np.inf
        old = cells[col]
        if c[2] < old[1]:
            old[0], old[1] = c[1], c[2]
        if c[4] > old[3]:
            old[2], old[3] = c[3], c[4]
        self._cell = None

    @property
    def points_held(self) -> int:
        """How many (t, y) pairs are held: the rows' buckets, and the whole curve while it fits."""
        return len(self._rows) * self.columns * 2 + (len(self.whole[0]) if self.whole is not None else 0)

    def row(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row k's points (from k * row_s to (k + 1) * row_s) in time order: each bucket's minimum
        and maximum, one point where they are the same sample."""
        self._flush()
        cells = self._rows.get(k)
        if cells is None:
            return np.zeros(0), np.zeros(0)
        cells = cells[~np.isnan(cells[:, 0])]
        lo_first = cells[:, 0] <= cells[:, 2]
        t = np.column_stack([np.where(lo_first, cells[:, 0], cells[:, 2]), np.where(lo_first, cells[:, 2], cells[:, 0])])
        y = np.column_stack([np.where(lo_first, cells[:, 1], cells[:, 3]), np.where(lo_first, cells[:, 3], cells[:, 1])])
        keep = np.ones(t.shape, dtype=bool)
        keep[:, 1] = (t[:, 0] != t[:, 1]) | (y[:, 0] != y[:, 1])   # else min and max are one sample
        return t[keep], y[keep]
