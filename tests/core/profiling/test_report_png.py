"""The report's graph section: the studio's PNG embedded as a data URI, or the SVG without one."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from html.parser import HTMLParser

import pytest

from studio.core.errors import BadInputError
from studio.core.jobs.protocol import run_inline
from studio.core.model.graph import ModelGraph
from studio.core.profiling.job import profile_model
from studio.core.profiling.records import ProfileRun
from studio.core.workflows.report import PNG_SIGNATURE, png_size, write_report


def _png(width: int, height: int) -> bytes:
    """A real PNG (RGB, a red-to-yellow ramp), written by hand so core tests need no Qt."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + b"".join(bytes((255, x * 255 // width, 40)) for x in range(width))
        for _ in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.in_caption = False
        self.captions: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        self.in_caption = tag == "figcaption"

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self.in_caption = False

    def handle_data(self, data):
        if self.in_caption:
            self.captions.append(data)


@pytest.fixture(scope="module")
def run_and_graph(prof_models):
    req = {"model": str(prof_models["float"]), "backend": "cpu", "runs": 4, "warmup": 1}
    run = ProfileRun.from_json(run_inline(profile_model, {**req, "layer_runs": 1}))
    return run, ModelGraph.load(prof_models["float"])


def _parse(text: str) -> _Images:
    parser = _Images()
    parser.feed(text)
    assert "script" not in parser.tags  # still one self-contained file, nothing to execute
    return parser


@pytest.mark.parametrize("as_path", [False, True])
def test_graph_png_is_embedded_in_place_of_the_svg(run_and_graph, tmp_path, as_path):
    run, graph = run_and_graph
    assert run.overlay().values, "the CPU run gave per-node figures"
    png = _png(320, 200)
    given = png
    if as_path:
        given = tmp_path / "graph.png"
        given.write_bytes(png)
    caption = "The studio's own graph view. Node colour: kernel time (ms) per node."
    text = write_report(
        tmp_path / "r.html", [run], graph, graph_png=given, graph_png_caption=caption
    ).read_text()
    parsed = _parse(text)
    assert len(parsed.images) == 1
    src = parsed.images[0]["src"] or ""
    assert src.startswith("data:image/png;base64,")
    data = base64.b64decode(src.split(",", 1)[1], validate=True)
    assert data == png and data.startswith(PNG_SIGNATURE)
    assert png_size(data) == (320, 200)
    assert (parsed.images[0]["width"], parsed.images[0]["height"]) == ("320", "200")
    assert "".join(parsed.captions) == caption
    assert "Where the time goes in the graph" in text
    # the PNG replaces the drawn graph: histogram, over time, top layers, op types remain
    assert len(re.findall(r"<svg", text)) == 4
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_default_caption_says_what_the_colour_means(run_and_graph, tmp_path):
    run, graph = run_and_graph
    text = write_report(tmp_path / "r.html", [run], graph, graph_png=_png(64, 48)).read_text()
    caption = "".join(_parse(text).captions)
    assert "graph view" in caption and "kernel time" in caption and "grey" in caption


def test_without_a_png_the_report_draws_its_svg(run_and_graph, tmp_path):
    run, graph = run_and_graph
    text = write_report(tmp_path / "r.html", [run], graph).read_text()
    assert not _parse(text).images
    assert len(re.findall(r"<svg", text)) == 5  # the graph heat map is the fifth


def test_a_file_that_is_not_a_png_is_refused_by_name(run_and_graph, tmp_path):
    run, graph = run_and_graph
    fake = tmp_path / "graph.png"
    fake.write_bytes(b"GIF89a not a png at all, really")
    with pytest.raises(BadInputError, match=r"graph\.png.*not a PNG"):
        write_report(tmp_path / "r.html", [run], graph, graph_png=fake)
    with pytest.raises(BadInputError, match="cannot read"):
        write_report(tmp_path / "r.html", [run], graph, graph_png=tmp_path / "missing.png")
    assert not (tmp_path / "r.html").exists()
