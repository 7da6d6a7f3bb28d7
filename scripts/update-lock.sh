#!/usr/bin/env bash
# Regenerate requirements.lock (exact versions + sha256 hashes) from pyproject.toml's ranges.
#
#   scripts/update-lock.sh                 keep every pin that still satisfies the ranges; add
#                                          what new dependencies need (run after merging a branch
#                                          that adds one)
#   scripts/update-lock.sh --upgrade       move every package to the newest version in range
#   scripts/update-lock.sh -P onnxruntime-qnn   upgrade one package only
#
# Then `make test` (it reinstalls from the lock) and commit the lock. A new onnxruntime-qnn brings
# a new QNN SDK: numerics, op support and the HTP emulator's behaviour can change with it, so
# compare a profile and an SQNR report before and after (README, "Updating the lock").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if ! "$PY" -m piptools --version >/dev/null 2>&1; then
  "$PY" -m pip install --quiet "pip-tools>=7.4,<8"
fi
export CUSTOM_COMPILE_COMMAND="scripts/update-lock.sh"
"$PY" -m piptools compile \
  --quiet \
  --generate-hashes \
  --allow-unsafe \
  --strip-extras \
  --no-emit-index-url \
  --no-emit-find-links \
  --extra dev --extra package \
  --output-file requirements.lock \
  "$@" \
  pyproject.toml
echo "requirements.lock: $(grep -c '^[A-Za-z0-9]' requirements.lock) packages pinned with hashes"
