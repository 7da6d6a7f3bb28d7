# Two entry points: `make run` and `make test`. Both create .venv with the machine's python3 and
# install exactly what requirements.lock pins (versions + sha256 hashes); pyproject.toml keeps the
# ranges for library users. Regenerate the lock with scripts/update-lock.sh (README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
STAMP := $(VENV)/.installed

.PHONY: run test test-torch lint bench clean venv package screenshots

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK) scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
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

# The one-folder app: dist/npu-studio/npu-studio (PyInstaller, packaging/npu-studio.spec).
package: $(STAMP)
	nice $(VENV)/bin/pyinstaller --noconfirm --log-level WARN --distpath dist \
		--workpath build/pyinstaller packaging/npu-studio.spec
	cp packaging/npu-studio.desktop dist/npu-studio/
	@du -sh dist/npu-studio

# README pictures: one per workspace after a real calibrate -> analyse -> profile on the demo.
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screenshots.py docs/screenshots

clean:
	rm -rf $(VENV) out build dist *.egg-info
