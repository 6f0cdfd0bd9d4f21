"""`hiplevel report` streams: a block's replayed angles go one sample at a time into per-row min/max
envelopes (host.report.svg.RowEnvelopes), so the report's memory does not grow with the session's
length, and each bucket's minimum and maximum are those of the samples in it."""
import math
import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import host.links.replay  # noqa: F401 - imported by the report; loaded here so it is not counted
import host.session.runner  # noqa: F401
from host import store
from host.bench.memory import record_session
from host.report import html
from host.report.svg import RowEnvelopes


def _report_of(tmp_path, seconds: float, monkeypatch) -> tuple[int, list[RowEnvelopes], str]:
    """(peak Python memory of the session report, the plot traces it built, the page) of a hip-dip
    set of `seconds` recorded by the real Recorder into a real SQLite file."""
    db = tmp_path / f"{seconds:g}.sqlite"
    record_session(db, seconds)
    made, angle_trace = [], html.angle_trace

    def kept_trace():   # the report's own trace, kept to look at
        made.append(angle_trace())
        return made[-1]
    monkeypatch.setattr(html, "angle_trace", kept_trace)
    conn = store.connect(db)
    try:
        (session,) = store.list_sessions(conn)
        session = store.get_session(conn, session.id)
        tracemalloc.start()
        try:
            page = html.session_report(conn, session)
            return tracemalloc.get_traced_memory()[1], made, page
        finally:
            tracemalloc.stop()
    finally:
        conn.close()


def test_report_memory_does_not_grow_with_the_session(tmp_path, monkeypatch):
    # both sessions are longer than one plot row, so both are drawn from the rows' envelopes
    monkeypatch.setattr(store, "FRAME_CHUNK", 256)   # many reads in both (a 60-minute one: bench memory)
    short, (short_trace,), short_page = _report_of(tmp_path, 160.0, monkeypatch)
    long, (long_trace,), long_page = _report_of(tmp_path, 400.0, monkeypatch)
    assert long_trace.n > 2.4 * short_trace.n
    # what the plots hold is per row, not per sample: 800 buckets of two points
    rows = math.ceil(long_trace.end_t / html.PLOT_ROW_S)
    assert long_page.count('aria-label="obliquity ') == rows == 4
    assert long_trace.whole is None and long_trace.points_held == rows * html.MAX_POINTS < long_trace.n / 10
    # 2.5 times the samples; holding them (as the report did before it streamed) grows with them
    assert long < 1.3 * short, (short, long)


# times on a grid of 1/64 s and buckets of 1/8 s: every bucket edge is exact in binary, so which
# bucket a sample on an edge belongs to is not a rounding question
ROW_S, COLUMNS = 1.0, 8


@st.composite
def curves(draw):
    ticks = sorted(draw(st.sets(st.integers(0, 64 * 5), min_size=1, max_size=200)))
    t = np.array(ticks, dtype=float) / 64
    y = np.array(draw(st.lists(st.one_of(st.floats(-40, 40), st.just(math.nan)), min_size=len(t),
                               max_size=len(t))))
    return t, y


@settings(max_examples=300, deadline=None)
@given(curves())
def test_each_bucket_keeps_the_min_and_max_of_its_samples(curve):
    t, y = curve
    env = RowEnvelopes(ROW_S, COLUMNS, whole_s=1.25 * ROW_S)
    for a, b in zip(t, y):
        env.add(float(a), float(b))
    assert env.n == len(t) and env.end_t == t[-1]
    finite = ~np.isnan(y)
    if finite.any():
        assert env.max_abs_y == np.max(np.abs(y[finite]))
    else:
        assert math.isnan(env.max_abs_y)
    if t[-1] <= 1.25 * ROW_S:   # short enough for one row: every sample is kept as it came
        assert list(env.whole[0]) == list(t) and np.array_equal(np.array(env.whole[1]), y, equal_nan=True)
    else:
        assert env.whole is None
    pairs = set(zip(t[finite].tolist(), y[finite].tolist()))
    for k in range(math.ceil(t[-1] / ROW_S) + 1):
        rt, ry = env.row(k)
        assert np.all(np.diff(rt) >= 0)                       # in time order, to draw as a line
        assert set(zip(rt.tolist(), ry.tolist())) <= pairs    # only samples
        edges = k * ROW_S + np.arange(COLUMNS + 1) * (ROW_S / COLUMNS)
        for j in range(COLUMNS):
            last = j == COLUMNS - 1   # the row's last bucket holds its end too (a sample on the edge)
            inside = finite & (t >= edges[j]) & ((t <= edges[j + 1]) if last else (t < edges[j + 1]))
            got = ry[(rt >= edges[j]) & ((rt <= edges[j + 1]) if last else (rt < edges[j + 1]))]
            if not inside.any():
                assert len(got) == 0
                continue
            assert got.min() == y[inside].min() and got.max() == y[inside].max()
            assert len(got) == (1 if y[inside].min() == y[inside].max() else 2)
