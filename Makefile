# `make demo` and `make test` each set everything up on a fresh Debian/Ubuntu machine with
# Python 3.11: Debian packages Open3D needs (only when missing), then .venv with the project.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := libusb-1.0-0 libgl1 libegl1 libgomp1 libvulkan1 mesa-vulkan-drivers xvfb
# The browser the report test renders report.html in. Optional: where no package provides it
# (Ubuntu ships Chromium as a snap) the install is skipped and that one test says why it skips.
BROWSER_PACKAGES := chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR := demo

.PHONY: setup apt demo test lint typecheck pytest bench clean

setup: apt $(VENV)/.installed

# Install Open3D's runtime libraries when any is missing (dpkg -s is quick and needs no network).
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  command -v google-chrome >/dev/null || { \
	  echo "installing Debian packages: $(BROWSER_PACKAGES) (optional)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null 2>&1 || \
	  echo "no $(BROWSER_PACKAGES) package here: the report's browser test will skip"; }

$(VENV)/.installed: pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	@# An editable install is not byte-compiled; where PYTHONDONTWRITEBYTECODE is set every
	@# `replay` start would compile the package again (~50 ms).
	$(BIN)/python -m compileall -q bagscope
	@touch $@

demo: setup
	@mkdir -p $(DEMO_DIR)
	$(BIN)/replay simulate $(DEMO_DIR)/drive.mcap --duration 20s --seed 0 --scenario urban \
	  --faults "drop:/lidar/points=0.05,outage:/camera/image/compressed=12s+1.5s,delay:/camera/image/compressed=40ms" \
	  --overwrite
	$(BIN)/replay analyze $(DEMO_DIR)/drive.mcap --detect --out $(DEMO_DIR)/run --overwrite
	$(BIN)/replay score $(DEMO_DIR)/run --truth $(DEMO_DIR)/drive.mcap.truth.json

lint: setup
	$(BIN)/ruff check bagscope tests bench
	$(BIN)/ruff format --check bagscope tests bench

typecheck: setup
	$(BIN)/mypy --strict bagscope

pytest: setup
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: setup
	$(BIN)/python bench/replay_throughput.py
	$(BIN)/python bench/small_messages.py
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/models.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/batch.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
