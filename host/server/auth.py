"""Therapist accounts and signed-in browser sessions for the web dashboard.

In: user name + password from the sign-in form, the session cookie of each request, the CSRF token
of each form. Out: the signed-in `store.Therapist` (or None), new session cookies, verdicts on CSRF
tokens and on whether a sign-in attempt is allowed now.

- Passwords: argon2id (argon2-cffi's defaults); only the hash is stored (store.therapists).
- Sessions: a random 256-bit cookie; the database keeps only its SHA-256 (store.web_sessions), so a
  copy of the database signs nobody in. A session ends after IDLE_S without a request or MAX_S in
  all, or at sign-out; setting a therapist's password again ends all of theirs. The last use is
  written at most once a minute (store.WEB_SESSION_TOUCH_S), so pages only read the database.
- CSRF: every signed-in session has its own random token, put in each form and checked on each
  POST; the sign-in form (no session yet) uses a double-submit cookie.
- Sign-in rate limit: at most MAX_FAILURES failed attempts per user name and per client address in
  WINDOW_S; further attempts are refused (HTTP 429) without checking the password.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from host import store

IDLE_S = 30 * 60.0        # a session unused this long is signed out
MAX_S = 12 * 3600.0       # and any session after a working day
MAX_FAILURES = 5
WINDOW_S = 300.0
USERNAME_MAX = 64
PASSWORD_MIN, PASSWORD_MAX = 10, 256

_hasher = PasswordHasher()
# verified against when the user name is unknown, so both cases take as long
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_username(name: str) -> str:
    """A user name: 1-64 characters of letters, digits, '.', '_', '-' or '@'. Raises ValueError."""
    name = name.strip()
    if not 1 <= len(name) <= USERNAME_MAX or not all(c.isalnum() or c in "._-@" for c in name) \
            or not name.isascii():
        raise ValueError(f"a user name has 1 to {USERNAME_MAX} letters, digits, '.', '_', '-' or '@'")
    return name


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def verify(conn, username: str, password: str) -> store.Therapist | None:
    """The therapist if the user name and password match, else None."""
    t = store.therapist(conn, username=username)
    try:
        _hasher.verify(t.password_hash if t else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return t


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start_session(conn, therapist: store.Therapist) -> tuple[str, str]:
    """(cookie token, csrf token) of a new signed-in session."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.add_web_session(conn, digest(token), therapist.id, csrf, time.time(), IDLE_S, MAX_S)
    return token, csrf


def session_of(conn, token: str | None) -> tuple[store.Therapist, str] | None:
    """(therapist, csrf token) of a valid session cookie, else None."""
    if not token or len(token) > 100:
        return None
    found = store.web_session(conn, digest(token), time.time(), IDLE_S, MAX_S)
    if found is None:
        return None
    t = store.therapist(conn, therapist_id=found[0])
    return (t, found[1]) if t is not None else None


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected).encode(), str(given).encode())


class SignInLimiter:
    """Failed sign-ins per key (user name, client address) in a sliding window; thread-safe."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, clock=time.monotonic):
        self.max_failures, self.window_s, self.clock = max_failures, window_s, clock
        self._fails: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def _recent(self, key: str) -> collections.deque:
        q, limit = self._fails[key], self.clock() - self.window_s
        while q and q[0] < limit:
            q.popleft()
        return q

    def wait_s(self, *keys: str) -> float:
        """0 if an attempt is allowed now, else the seconds until it is."""
        with self._lock:
            waits = [self._recent(k)[0] + self.window_s - self.clock() for k in keys
                     if len(self._recent(k)) >= self.max_failures]
            for k in keys:  # keep the table small: drop keys with no recent failure
                if not self._fails[k]:
                    del self._fails[k]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._recent(k).append(self.clock())
