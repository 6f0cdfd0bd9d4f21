"""The therapists' web dashboard (`hiplevel serve`): the clinic's patients, their sessions and
progress (the HTML reports' content) and a live view of every session being recorded now.

In: the session store (host.store), which stations write through host.sinks.recorder; browsers over
HTTP and a WebSocket. Out: HTML pages (Jinja2 templates in templates/, plain JavaScript in static/)
and JSON frames of live angles and status. `app.py` builds the app, `auth.py` signs therapists in,
`live.py` tails the database for running blocks.
"""
