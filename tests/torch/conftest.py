"""torch tests: run by ``make test-torch`` (``-m torch``); without torch they fail, never skip."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

MAKE_MODELS = r"""
import sys, torch, torch.nn as nn
out = sys.argv[1]

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)

    def forward(self, x):
        return torch.relu(self.bn1(self.conv1(x))) + x

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.layer2 = nn.Sequential(Block(), nn.ReLU())
        self.fc = nn.Linear(8, 4)

    def forward(self, image):
        x = self.layer2(torch.relu(self.conv1(image)))
        return self.fc(x.mean((2, 3)))

torch.manual_seed(0)
model = Net().eval()
with torch.no_grad():  # non-trivial batch-norm statistics
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5); m.running_var.uniform_(0.5, 2.0)
example = torch.randn(1, 3, 16, 16)
torch.jit.save(torch.jit.trace(model, example), f"{out}/net_ts.pt")
torch.export.save(torch.export.export(model, (example,)), f"{out}/net_ep.pt2")
batch = torch.export.Dim("batch", min=1, max=8)
torch.export.save(
    torch.export.export(model, (torch.randn(2, 3, 16, 16),), dynamic_shapes={"image": {0: batch}}),
    f"{out}/net_dynamic.pt2",
)
torch.save(model, f"{out}/pickled.pt")
torch.save(model.state_dict(), f"{out}/state_dict.pt")
"""


def _torch_python() -> str:
    explicit = os.environ.get("NPU_STUDIO_TORCH_PYTHON")
    if explicit:
        return explicit
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    pytest.fail(
        "torch tests need torch: run `make test-torch` (installs the [torch] extra) or set "
        "NPU_STUDIO_TORCH_PYTHON to an interpreter that has torch, onnx and onnxscript"
    )


@pytest.fixture(scope="session")
def torch_python() -> str:
    return _torch_python()


@pytest.fixture(scope="session")
def torch_models(torch_python, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("torch_models")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([torch_python, "-c", MAKE_MODELS, str(out)], check=True, env=env, timeout=600)
    return out
