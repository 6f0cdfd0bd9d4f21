"""Values that parse as numbers but would harm a session are refused by the real command-line
parser with one sentence (exit 2, no traceback), and ExerciseConfig refuses them too, for callers
that do not go through the command line (the window, a replay's stored settings)."""
import math

import pytest

from host.cli import main
from host.processing.exercise import ExerciseConfig

RUN = ["run", "--serial", "/dev/null", "--headless", "--mute", "--no-record"]


@pytest.mark.parametrize("args,words", [
    (["--hysteresis", "nan"], "hysteresis from 0 to 5 degrees"),
    (["--hysteresis", "1e9"], "hysteresis from 0 to 5 degrees"),
    (["--hysteresis", "-5"], "hysteresis from 0 to 5 degrees"),
    (["--min-on", "inf"], "shortest cue from 0 to 5 seconds"),
    (["--min-on", "nan"], "shortest cue from 0 to 5 seconds"),
    (["--set-reps", "-3"], "reps per set, a whole number from 0 to 500"),
    (["--set-reps", "2.5"], "reps per set"),
    (["--threshold", "inf"], "threshold from 2 to 15 degrees"),
])
def test_run_refuses_harmful_cue_settings(capsys, args, words):
    with pytest.raises(SystemExit) as exit_:
        main(RUN + args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and words in err and "Traceback" not in err


@pytest.mark.parametrize("args,words", [
    (["--link", "ble", "--hci-port", "-1"], "a TCP port from 1 to 65535"),
    (["--link", "ble", "--hci-port", "70000"], "a TCP port from 1 to 65535"),
    (["--link", "ble", "--dropout-for", "0"], "a number above 0"),
    (["--link", "ble", "--dropout-at", "-2"], "a sensor time in seconds"),
])
def test_sim_refuses_impossible_link_settings(capsys, args, words):
    with pytest.raises(SystemExit) as exit_:
        main(["sim", *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and words in err and "Traceback" not in err


def test_sim_refuses_a_dropout_on_the_pty_link_instead_of_ignoring_it(capsys):
    assert main(["sim", "--dropout-at", "5"]) == 2
    err = capsys.readouterr().err
    assert "--dropout-at is for the BLE link" in err
    assert capsys.readouterr().out == ""  # no port was opened or announced


@pytest.mark.parametrize("field,value", [
    ("hysteresis_deg", math.nan), ("hysteresis_deg", 1e9), ("hysteresis_deg", -5.0),
    ("min_on_s", math.inf), ("min_on_s", math.nan), ("set_reps", -3), ("set_reps", 2.5),
    ("bandwidth_deg", math.nan),
])
def test_exercise_config_refuses_them_too(field, value):
    with pytest.raises(ValueError):
        ExerciseConfig(**{field: value})
    ExerciseConfig(**{field: {"set_reps": 10}.get(field, 1.0)})  # a sensible value is fine
