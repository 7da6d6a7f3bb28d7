"""Build the demo model's sample images reproducibly: ``python resources/models/build_demo_data.py``.

Why generated: nothing may be downloaded, and no photo collection ships with the studio's
dependencies. The images are *dead-leaves* pictures (overlapping opaque discs whose radii follow a
power law), the standard synthetic model of natural-image statistics: a 1/f-like spectrum, sharp
occlusion edges and flat regions, so activation ranges look like those of photographs rather than
of uniform noise. Written as 64x64 RGB PNGs, the demo model's input size:

- ``demo_cnn_data/calibration/``: 16 images the Calibrate dialog offers by default;
- ``demo_cnn_data/heldout/``: 8 different images for accuracy figures (output SQNR against float),
  so the report's accuracy is not measured on the data the ranges were fitted to.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64
SEED = 20261201
SPLITS = {"calibration": 16, "heldout": 8}


def dead_leaves(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One RGB uint8 image: discs dropped back to front until the canvas is covered."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.zeros((size, size, 3), np.float32)
    covered = np.zeros((size, size), bool)
    base = rng.uniform(0.15, 0.85, 3)  # a scene's overall colour cast
    for _ in range(4000):
        if covered.all():
            break
        # radius density ~ r^-3 between 1.5 and 28 px (inverse-CDF sampling)
        u = rng.uniform()
        rmin, rmax = 1.5, 28.0
        r = 1.0 / np.sqrt(u / rmax**2 + (1 - u) / rmin**2)
        cx, cy = rng.uniform(-4, size + 4, 2)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        new = disc & ~covered
        if not new.any():
            continue
        colour = np.clip(base + rng.normal(0, 0.22, 3), 0, 1)
        shade = 1.0 + 0.25 * ((xx - cx) / max(r, 1.0)) * rng.uniform(-1, 1)  # soft lighting
        image[new] = np.clip(colour[None, :] * shade[new][:, None], 0, 1)
        covered |= disc
    image += rng.normal(0, 0.015, image.shape)  # sensor noise
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def build(out_dir: Path) -> list[Path]:
    rng = np.random.default_rng(SEED)
    written = []
    for split, count in SPLITS.items():
        folder = out_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            path = folder / f"{split}_{i:02d}.png"
            Image.fromarray(dead_leaves(rng)).save(path, optimize=True)
            written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("demo_cnn_data")
    files = build(target)
    print(f"wrote {len(files)} images under {target}")
