"""A fake QNN SDK folder for the phone tests: the Android files a deployment pushes (ELF-tagged
placeholders, which the fake phone never executes) and a host ``qnn-profile-viewer`` script that
checks it was given the pulled profile log and prints the real viewer's text layout.

The standalone SDK cannot be downloaded here, so this is what the adb path is tested against."""

from __future__ import annotations

import sys
from pathlib import Path

VIEWER = """#!{python}
import argparse, sys
from pathlib import Path
p = argparse.ArgumentParser()
p.add_argument("--input_log", required=True)
a = p.parse_args()
assert Path(a.input_log).read_bytes().startswith(b"QNNPROF"), "not the pulled profile log"
print("Execute Stats (Average):")
print("------------------------")
print("Total Inference Time:")
print("NetRun: 612 us")
print("Backend (QNN (execute) time): 480 us")
print("Backend (/conv1/Conv:OpId_12 (cycles)): 351234 cycles")
print("Backend (/relu1/Relu:OpId_14 (cycles)): 20110 cycles")
"""

DEVICE_FILES = (
    "bin/aarch64-android/qnn-net-run",
    "lib/aarch64-android/libQnnHtp.so",
    "lib/aarch64-android/libQnnHtpV75Stub.so",
    "lib/aarch64-android/libQnnSystem.so",
    "lib/hexagon-v75/unsigned/libQnnHtpV75Skel.so",
)


def make_device_sdk(root: Path) -> Path:
    """Write the fake SDK under ``root`` and return it (point ``QNN_SDK_ROOT`` at it)."""
    for rel in DEVICE_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\x7fELF " + rel.encode())
    viewer = root / "bin/x86_64-linux-clang/qnn-profile-viewer"
    viewer.parent.mkdir(parents=True)
    viewer.write_text(VIEWER.format(python=sys.executable))
    viewer.chmod(0o755)
    return root
