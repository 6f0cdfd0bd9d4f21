"""A small SVG chart library for the HTML reports: a few lines of geometry, nothing to fetch.

In: data coordinates (numpy arrays or lists). Out: SVG text for inline use. `Chart` draws axes with
"nice" ticks, lines, bands, bars and labels; `envelope` thins a long curve to min/max per bucket so
every peak survives.
"""
from __future__ import annotations

import html
import math

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
