"""Property tests: the profile parsers meet arbitrary bytes with StudioError, never a crash.

A profiler CSV comes from a native library of whatever version the user has, a viewer log from a
device, an ORT profile from anywhere; fields are not escaped. Whatever the text, the parsers either
return a profile or raise one of the studio's own errors naming the source.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.core.errors import StudioError
from studio.core.profiling.readers.ort_profile import parse_ort_profile_events
from studio.core.profiling.readers.qnn_csv import HEADER, parse_qnn_csv_text
from studio.core.profiling.readers.viewer_text import parse_viewer_text

FIELD = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
MESSAGES = st.sampled_from(["INIT", "FINALIZE", "EXECUTE", "NODE", "BACKEND", "DE-INIT", "??"])
UNITS = st.sampled_from(["US", "CYCLES", "COUNT", "BYTES", "", "ms"])
NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12).map(str), st.floats(allow_nan=True).map(str), FIELD
)


@st.composite
def csv_rows(draw) -> str:
    rows = draw(
        st.lists(
            st.tuples(NUMBERS, MESSAGES, NUMBERS, UNITS, FIELD, FIELD, FIELD, st.booleans()),
            max_size=30,
        )
    )
    lines = [",".join(HEADER)] if draw(st.booleans()) else []
    for ts, msg, value, unit, source, level, ident, extra_comma in rows:
        ident = f"{ident}, with a comma" if extra_comma else ident
        lines.append(",".join([ts, msg, value, unit, source, level, ident]))
    return "\n".join(lines)


def _parses_or_studio_error(fn, *args) -> None:
    try:
        fn(*args)
    except StudioError as exc:
        assert "fuzz" in str(exc)  # the error names its source


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_rows())
def test_qnn_csv_parser_structured_fuzz(text):
    _parses_or_studio_error(parse_qnn_csv_text, text, "fuzz.csv")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_qnn_csv_parser_raw_text_fuzz(text):
    _parses_or_studio_error(parse_qnn_csv_text, text, "fuzz.csv")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_viewer_text_parser_fuzz(text):
    _parses_or_studio_error(parse_viewer_text, text, "fuzz.log")


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | FIELD,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(FIELD, children, max_size=4),
    max_leaves=20,
)
EVENT = st.fixed_dictionaries(
    {
        "cat": st.sampled_from(["Node", "Session", "Api", ""]) | JSONISH,
        "name": FIELD | JSONISH,
        "dur": st.integers(-5, 10**6) | JSONISH,
        "ts": st.integers(0, 10**9) | JSONISH,
        "args": JSONISH
        | st.fixed_dictionaries(
            {"op_name": FIELD, "provider": FIELD, "output_type_shape": JSONISH}
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(JSONISH, st.lists(EVENT | JSONISH, max_size=12)))
def test_ort_profile_parser_fuzz(events):
    json.dumps(events)  # only what a JSON file could hold
    _parses_or_studio_error(parse_ort_profile_events, events, "fuzz.json")
