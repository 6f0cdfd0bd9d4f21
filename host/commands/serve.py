"""The therapists' web dashboard (`hiplevel serve`): patients, sessions, progress and live sessions.

In: the session database (--db, as every command; stations record into it), the address to listen
on (127.0.0.1 by default: put a TLS reverse proxy in front to reach it from elsewhere,
docs/deployment.md). Out: the web app of host.server.app on uvicorn until Ctrl-C. Accounts come from
`hiplevel clinic add-therapist`.
"""
from __future__ import annotations

import argparse

from host import store
from host.commands.argtypes import integer
from host.commands.db_args import add_db_argument
from host.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=integer(1, 65535, what="a port from 1 to 65535"), default=8400, help="TCP port (default 8400)")
    p.add_argument("--secure-cookies", action="store_true",
                   help="send the session cookie over HTTPS only (set this behind a TLS proxy)")
    add_db_argument(p)


def run(args) -> int:
    import socket

    import uvicorn
    from host.server.app import create_app
    try:
        app = create_app(args.db or store.default_db_path(), secure_cookies=args.secure_cookies)
    except store.StoreError as e:
        raise UserError(str(e)) from None
    # bound here, not by uvicorn, so a port in use or a wrong address is one sentence
    try:
        family = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    print(f"hiplevel dashboard on http://{args.host}:{args.port}/ (Ctrl-C ends it)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="websockets-sansio")
    uvicorn.Server(config).run(sockets=[sock])
    return 0
