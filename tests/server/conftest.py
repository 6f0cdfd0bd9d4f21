"""Fixtures for the dashboard's tests: one database with two clinics (recorded through the real
recorder), an app on it, and signing in through the real form. Every test runs on both backends: an
SQLite file and a database on the real PostgreSQL server (tests/support/pgserver.py)."""
import re
import warnings

import pytest

from tests.support.clinic import PASSWORDS, two_clinics

with warnings.catch_warnings():  # starlette's TestClient says it prefers httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def new_clinic_db(request, tmp_path_factory, name: str = "clinic"):
    """(database, ids) of a fresh two_clinics database on the backend of request.param."""
    if request.param == "sqlite":
        db = tmp_path_factory.mktemp(name) / "sessions.sqlite"
    else:
        db = request.getfixturevalue("pg_server").new_database()
    return db, two_clinics(db)


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def clinic_db(request, tmp_path_factory):
    return new_clinic_db(request, tmp_path_factory)


WS_ORIGIN = {"origin": "http://testserver"}  # TestClient's WebSocket host


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client, user="ann", password=None):
    page = client.get("/signin")
    return client.post("/signin", data={"username": user, "password": password or PASSWORDS[user],
                                        "csrf": csrf_of(page.text)}, follow_redirects=False)


@pytest.fixture
def app(clinic_db):
    from host.server.app import create_app
    return create_app(clinic_db[0])


@pytest.fixture
def client(app):
    with TestClient(app, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def ann(client):
    r = sign_in(client)
    assert r.status_code == 303 and "hl_session" in r.cookies
    return client
