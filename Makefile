# Two entry points: `make run` and `make test`. Both create .venv with the machine's python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-torch lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Opens the studio on the demo model; with no display, runs the headless pipeline into out/.
run: $(STAMP)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(VENV)/bin/npu-studio resources/models/demo_cnn.onnx; \
	else \
		echo "No display: running the headless pipeline on the demo model into out/"; \
		$(VENV)/bin/npu-studio pipeline resources/models/demo_cnn.onnx -o out; \
	fi

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check studio tests $(wildcard bench resources)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider -m "not torch"

# The PyTorch import tests: adds the [torch] extra (CPU torch 2.13.0 + onnxscript) to .venv first.
test-torch: $(STAMP)
	$(PY) -m pip install --quiet torch==2.13.0 -e ".[dev,torch]"
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider -m torch tests/torch

lint: $(STAMP)
	$(VENV)/bin/ruff check studio tests $(wildcard bench resources)
	$(VENV)/bin/ruff format --check studio tests $(wildcard bench resources)

clean:
	rm -rf $(VENV) out build *.egg-info
