"""`hiplevel clinic` as a process on a real database: therapists (password on stdin, argon2 hash
stored, never the password), patients assigned to a clinic, mistakes said in one sentence."""
import subprocess

from host import store
from host.server import auth
from tests.support.simproc import ROOT, hiplevel


def clinic(db, *args, stdin=""):
    return subprocess.run(hiplevel("clinic", *args, "--db", db), input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_add_therapist_assign_patient_and_list(tmp_path):
    db = tmp_path / "s.sqlite"
    r = clinic(db, "add-therapist", "North", "ann", "--password-stdin", stdin="a-long-password\n")
    assert r.returncode == 0 and "Therapist ann added to North" in r.stdout, r.stderr
    r = clinic(db, "assign-patient", "North", "P-017")
    assert r.returncode == 0 and "P-017 is now seen by North" in r.stdout
    conn = store.connect(db)
    t = store.therapist(conn, username="ann")
    assert t.clinic == "North" and t.password_hash.startswith("$argon2id$") and "a-long-password" not in t.password_hash
    assert auth.verify(conn, "ann", "a-long-password") is not None and auth.verify(conn, "ann", "wrong") is None
    assert [p["label"] for p in store.clinic_patients(conn, t.clinic_id)] == ["P-017"]
    conn.close()
    r = clinic(db, "add-therapist", "South", "ann", stdin="another-password\n")  # a new password, same clinic
    assert r.returncode == 0 and "new password" in r.stdout and "stays in North" in r.stdout
    assert "North: 1 therapist(s), 1 patient(s)" in clinic(db, "list").stdout


def test_clinic_mistakes_get_one_sentence(tmp_path):
    db = tmp_path / "s.sqlite"
    cases = [(("add-therapist", "North", "ann"), "short\n", "10 to 256 characters"),
             (("add-therapist", "North", "ann; DROP TABLE x"), "a-long-password\n", "user name has"),
             (("assign-patient", "Nowhere", "P-1"), "", "no clinic 'Nowhere'"),
             (("assign-patient", "North", "x" * 41), "", "1 to 40 characters")]
    for args, stdin, words in cases:
        r = clinic(db, *args, stdin=stdin)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
