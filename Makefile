# ciper_ros: every setup step lives here. `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ciper-installed
OUT ?= out

# ROS 2 from pip wheels: ament index lives in the venv; rclpy needs the rmw named.
# DDS never leaves this machine: LOCALHOST discovery here, and test/conftest.py (and the demo)
# add a per-run ROS_DOMAIN_ID, a private ROS_LOG_DIR and a shared-memory-only Fast DDS profile.
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PYTHONDONTWRITEBYTECODE := 1

REQS := requirements/base.txt requirements/ros.txt requirements/ros-build.txt requirements/dev.txt
PIP_INSTALL := $(PIP) install --disable-pip-version-check --progress-bar off -q \
	-c requirements/constraints.txt

.PHONY: help venv lint test test-all demo bench clean distclean freeze

help:
	@echo 'make demo      set up, then run the demo (see README)'
	@echo 'make test      set up, lint, run the fast tests (what CI runs)'
	@echo 'make test-all  every test, slow ones included'
	@echo 'make lint      ruff (ament flake8 rules)'
	@echo 'make bench     benchmarks -> bench/results/*.json'
	@echo 'make venv      create .venv with pinned dependencies and tf2_msgs'

venv: $(STAMP)

$(STAMP): $(REQS) requirements/constraints.txt setup.py setup.cfg package.xml \
		tools/build_tf2_msgs.sh tools/tf2_msgs/CMakeLists.txt tools/tf2_msgs/msg/TFMessage.msg
	@echo '==> [1/5] creating virtual environment $(VENV) with $(PYTHON)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo '==> [2/5] installing Python dependencies (torch CPU, numpy, OpenCV, FAISS, ONNX ...)'
	$(PIP_INSTALL) -r requirements/base.txt -r requirements/dev.txt
	@echo '==> [3/5] installing ROS 2 Kilted wheels (rclpy, Fast DDS, message packages)'
	$(PIP_INSTALL) -r requirements/ros.txt -r requirements/ros-build.txt
	@command -v cmake >/dev/null || { echo '    (no system cmake: installing it from PyPI)'; \
		$(PIP_INSTALL) cmake; }
	@echo '==> [4/5] building tf2_msgs into the venv (not on PyPI; about 15 s)'
	PATH=$(abspath $(VENV))/bin:$$PATH tools/build_tf2_msgs.sh $(VENV)
	@echo '==> [5/5] installing ciper_ros (editable)'
	$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	@$(PY) -c 'import rclpy, tf2_msgs.msg, torch, faiss, rosbags, cv2, ciper_ros' \
		&& touch $(STAMP) && echo '==> venv ready: $(VENV)'

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	$(PY) -m pytest -m 'not slow'

test-all: $(STAMP) lint
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/ciper demo --out $(OUT)/demo

bench: $(STAMP)
	$(PY) bench/run.py --out bench/results

freeze: $(STAMP)
	@{ echo '# Full resolved set (pip freeze of a working venv), applied as constraints so every'; \
	   echo '# transitive dependency is pinned too. Regenerate with `make freeze`.'; \
	   $(PIP) freeze --exclude-editable | grep -v '^torch=='; echo 'torch==2.13.0'; \
	 } > requirements/constraints.txt
	@echo 'wrote requirements/constraints.txt'

clean:
	rm -rf build *.egg-info .pytest_cache .ruff_cache $(OUT)
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
