# Two entry points, both self-contained on a fresh Debian machine as root:
#   make demo  - the app against the built-in simulated sensor
#   make test  - installs what the tests need, then runs them
# Everything Python lives in .venv; system packages come from apt only when missing.

VENV ?= .venv
PY := $(VENV)/bin/python
# Audio server + PortAudio (cue tone, audio tests), Xvfb + X libraries (real Qt window),
# python venv support for a bare Debian, Chromium + its driver (the dashboard's browser tests),
# espeak-ng (the spoken prompts of `hiplevel today`).
SYSPKGS := python3 python3-venv pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins espeak-ng \
	xvfb xauth libxkbcommon0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 \
	libxcb-xinput0 libxcb-cursor0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libegl1 libgl1 \
	libfontconfig1 libdbus-1-3 chromium chromium-driver postgresql tcpdump
PYTHON ?= python3

.PHONY: demo test sysdeps venv bench enclosure clean

sysdeps:
	@missing=$$(for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root (or install these with apt) first" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: sysdeps $(VENV)/.installed

demo: venv
	$(VENV)/bin/hiplevel demo

test: venv
	$(PY) -m pytest

bench: venv
	$(VENV)/bin/hiplevel bench pipeline

# The belt-clip enclosure: STL (print) and STEP (edit) files plus the drawing, in out/enclosure.
enclosure: venv
	$(PY) -m hardware.enclosure out/enclosure --drawing out/enclosure/drawing.svg

clean:
	rm -rf $(VENV) build *.egg-info
