"""Large JSON decoded in pieces: the same values as json.loads, and other threads keep running."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest

from studio.core.atomic import loads_json_strict
from studio.core.errors import StudioError
from studio.core.json_pieces import loads_in_pieces

DOCUMENTS = [
    {},
    [],
    {"a": [], "b": {}, "c": [[], [{}]]},
    {"layers": [{"name": f"t{i}", "db": i / 7, "ok": i % 2 == 0, "x": None} for i in range(50)]},
    [1, -2.5e-3, 'é\u2603\\"', True, False, None, [1, [2, [3, [4, [5]]]]]],
    {"dup": 1, "dup": 2},  # noqa: F601 - json keeps the last, so must we
    "just a string",
    12.5,
]


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_pieces_decode_exactly_what_json_loads_decodes(doc):
    for text in (json.dumps(doc), json.dumps(doc, indent=2), "  \n" + json.dumps(doc) + " \n"):
        assert loads_in_pieces(text, min_chars=0) == json.loads(text)
    assert loads_in_pieces('{"dup": 1, "dup": 2}', min_chars=0) == {"dup": 2}


@pytest.mark.parametrize(
    "text",
    ['{"a": 1,}', "[1, 2", '{"a" 1}', '{"a": 1} x', "[1 2]", "{1: 2}", "", "[", '{"a": [1,]}'],
)
def test_malformed_json_fails_as_json_loads_fails(text):
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        loads_in_pieces(text, min_chars=0)


def test_non_finite_literals_are_still_refused_in_a_large_file():
    rows = ",".join('{"db": 1.0}' for _ in range(30_000))
    text = '{"rows": [' + rows + ', {"db": NaN}]}'
    assert len(text) > 256 * 1024
    with pytest.raises(StudioError, match="NaN is not allowed"):
        loads_json_strict(text, "report.json")
    assert math.isnan(loads_in_pieces(text)["rows"][-1]["db"])  # without the check, as json


def _worst_gap_ms(decode, text: str) -> float:
    """The longest this thread waited between two 1 ms sleeps while ``decode`` ran on another."""
    done = threading.Event()

    def work():
        decode(text)
        done.set()

    worker = threading.Thread(target=work)
    last, worst = time.perf_counter(), 0.0
    worker.start()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        worst, last = max(worst, now - last), now
    worker.join()
    return worst * 1000


def test_a_large_decode_on_another_thread_lets_this_thread_run():
    rows = [{"name": f"layer_{i}", "sqnr_db": i * 0.001, "backend": "htp"} for i in range(200_000)]
    text = json.dumps({"layers": rows, "notes": ["x"] * 10})
    start = time.perf_counter()
    json.loads(text)
    one_call_ms = (time.perf_counter() - start) * 1000  # what a thread waits behind one C call
    pieces = min(_worst_gap_ms(loads_in_pieces, text) for _ in range(2))
    assert one_call_ms > 40, one_call_ms
    assert pieces < one_call_ms / 3, (pieces, one_call_ms)
