"""`hiplevel bench clinic` on a small load: it runs the real dashboard and stations and its numbers
add up (every frame sent is stored, the watchers got messages with measured delays)."""
from host.bench.clinic import one_run


def test_two_stations_one_watcher_store_every_frame_and_measure_the_delay():
    r = one_run(2, 1, 4.0)
    assert r["sent"] > 2 * 4 * 50 and r["stored"] == r["sent"] and not r["said"]
    assert r["messages"] > 30 and r["newest"] and all(0 < a <= b < 5 for a, b in zip(r["newest"], r["oldest"]))
    assert 0 < r["cpu_pct"] < 400


def test_the_same_on_postgresql(pg_server):
    r = one_run(2, 1, 4.0, pg_server)
    assert r["sent"] > 2 * 4 * 50 and r["stored"] == r["sent"] and not r["said"]
    assert r["messages"] > 30 and r["newest"]
