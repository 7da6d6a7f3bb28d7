#!/usr/bin/env bash
# Smoke test of the one-folder app, run with NO Python on PATH: proves dist/npu-studio carries its
# own interpreter, Qt, QtWebEngine, onnxruntime(-qnn) with the QNN libraries, netron and resources.
#   packaging/smoke.sh [dist/npu-studio/npu-studio]
# Runs --version, every subcommand's --help, each subcommand on the demo model (inspect --json
# and the rest), and an offscreen GUI run that opens the demo and runs a CPU and an HTP inference.
set -euo pipefail
cd "$(dirname "$0")/.."
APP=$(realpath "${1:-dist/npu-studio/npu-studio}")
ROOT=$(pwd)
DEMO="$ROOT/resources/models/demo_cnn.onnx"
CALIB="$ROOT/resources/models/demo_cnn_data/calibration"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# a PATH with the few tools this script needs and no python
mkdir -p "$WORK/bin"
for tool in bash env grep sed cat rm ls head tail mkdir timeout date du cut tr dirname; do
  ln -s "$(command -v "$tool")" "$WORK/bin/$tool"
done
run() {  # run the app with a clean environment: no python on PATH, no PYTHONPATH, no venv
  env -i HOME="$WORK/home" PATH="$WORK/bin" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
    NPU_STUDIO_DATA_DIR="$WORK/data" NPU_STUDIO_CACHE_DIR="$WORK/cache" \
    timeout 600 "$APP" "$@"
}
if env -i PATH="$WORK/bin" bash -c 'command -v python3 || command -v python' >/dev/null; then
  echo "smoke: python is on the test PATH" >&2; exit 1
fi
step() { echo "== $*"; }

step "--version"; run --version | grep -q "^npu-studio "
step "--help";    run --help >/dev/null
commands=$(run --help | sed -n '/^positional/,/^options/p' | grep -E '^    [a-z][a-z-]+( |$)' \
  | while read -r name _; do echo -n "$name "; done)
[ -n "$commands" ] || { echo "smoke: no subcommands listed" >&2; exit 1; }
for cmd in $commands; do step "$cmd --help"; run "$cmd" --help >/dev/null; done

step "inspect --json"; run inspect "$DEMO" --json | grep -q '"node_count"'
step "backends";        run backends >/dev/null
step "devices --catalogue"; run devices --catalogue >/dev/null
step "doctor --json";   run doctor --json >/dev/null || [ $? -eq 3 ]  # 3: no QNN SDK here, said so
step "quantize";        run quantize "$DEMO" -o "$WORK/q.onnx" --calib "$CALIB" \
                          --export-encodings "$WORK/enc.json" >/dev/null
step "encodings";       run encodings check "$WORK/enc.json" --model "$WORK/q.onnx" >/dev/null
step "compare";         run compare "$DEMO" "$WORK/q.onnx" --backend cpu >/dev/null
step "run (cpu)";       run run "$DEMO" --backend cpu >/dev/null
step "run (htp)";       run run "$WORK/q.onnx" --backend htp >/dev/null
step "assign";          run assign "$WORK/q.onnx" -o "$WORK/plan.json" >/dev/null
step "compile";         run compile "$WORK/q.onnx" --backend htp -o "$WORK/bundle" >/dev/null
step "profile (htp)";   run profile "$WORK/bundle" --runs 3 --warmup 1 >/dev/null
step "estimate";        run estimate "$WORK/q.onnx" >/dev/null
step "pipeline";        run pipeline "$DEMO" -o "$WORK/pipe" --runs 3 --warmup 1 >/dev/null
step "selfcheck --gui (window on the demo, CPU + HTP inference)"
run selfcheck --gui --json > "$WORK/selfcheck.json"
grep -q '"ok": true' "$WORK/selfcheck.json"
if grep -q '"ok": false' "$WORK/selfcheck.json"; then cat "$WORK/selfcheck.json" >&2; exit 1; fi
echo "smoke: ok ($(du -sh "$(dirname "$APP")" | cut -f1) app, $commands)"
