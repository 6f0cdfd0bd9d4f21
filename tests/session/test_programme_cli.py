"""`hiplevel programme show|edit|import|export` as a therapist runs it: real processes, a real
database file, a real editor ($EDITOR is a sed script)."""
import subprocess

from tests.support.simproc import ROOT, hiplevel


def prog(db, *args, env=None, input=None):
    import os
    e = {**os.environ, **(env or {})}
    return subprocess.run(hiplevel("programme", *args, "--db", db), capture_output=True, text=True,
                          cwd=ROOT, env=e, input=input, timeout=60)


def test_import_show_export_edit_versions(tmp_path):
    db = tmp_path / "s.sqlite"
    f = tmp_path / "p.toml"
    f.write_text('[[item]]\nexercise = "hip-dip"\nstance = "both"\nreps = 6\nthreshold_deg = 6\n\n'
                 '[[item]]\nexercise = "keep-level"\nhold_s = 20\n')
    r = prog(db, "import", f, "--patient", "P-017")
    assert r.returncode == 0, r.stderr
    assert "Saved as version 1 of P-017's programme." in r.stdout
    r = prog(db, "edit", "--patient", "P-017", "--item", "1", "--set", "reps=8", "--set", "feedback=faded")
    assert r.returncode == 0 and "version 2" in r.stdout
    assert "2 sets" not in r.stdout and "1 set of 8 reps" in r.stdout and "faded cue" in r.stdout
    r = prog(db, "show", "--patient", "P-017", "--version", "1")
    assert "1 set of 6 reps, threshold 6 deg" in r.stdout and "keep-level" in r.stdout
    out = tmp_path / "out.toml"
    assert prog(db, "export", "--patient", "P-017", out).returncode == 0
    assert 'feedback = "faded"' in out.read_text() and "reps = 8" in out.read_text()
    # the editor changes the file; the result is version 3
    r = prog(db, "edit", "--patient", "P-017", env={"EDITOR": "sed -i s/^reps\\ =\\ 8/reps\\ =\\ 9/"})
    assert r.returncode == 0, r.stderr
    assert "version 3" in r.stdout and "1 set of 9 reps" in r.stdout


def test_mistakes_are_one_sentence_and_save_nothing(tmp_path):
    db = tmp_path / "s.sqlite"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[item]]\nexercise = "hip-dip"\nreps = 500\n')
    r = prog(db, "import", bad, "--patient", "P-1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "item 1 (hip-dip): reps must be 2 to 50, not 500; nothing was saved" in r.stderr
    r = prog(db, "show", "--patient", "P-1")
    assert r.returncode == 2 and "has no programme yet" in r.stderr
    assert prog(db, "edit", "--patient", "P-1", "--set", "reps=12").returncode == 0
    r = prog(db, "edit", "--patient", "P-1", "--set", "colour=red")
    assert r.returncode == 2 and "unknown key 'colour'" in r.stderr
    # an editor that leaves a broken file: the text is kept and the command says where
    r = prog(db, "edit", "--patient", "P-1", env={"EDITOR": "sed -i s/^reps\\ =\\ 12/reps\\ =/"})
    assert r.returncode == 2 and "not valid TOML" in r.stderr and "your text is kept in" in r.stderr
    kept = r.stderr.split("your text is kept in ")[1].split(":")[0]
    assert "reps =\n" in open(kept).read()
    r = prog(db, "show", "--patient", "P-1")
    assert "version 1:" in r.stdout and "12 reps" in r.stdout
