"""Property tests: the loader never raises anything but StudioError, and every format round-trips
random valid encodings."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.core.encodings import (
    FORMATS,
    Encoding,
    EncodingSet,
    dump_encodings,
    load_encodings,
    parse_encodings,
)
from studio.core.errors import StudioError
from tests.core.test_encodings_formats import full_set, weights_model

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["True", "False", "0.6.1", "1.0.0", "2.0.0", "INT", "PER_CHANNEL", "uint8"])
)
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "version", "activation_encodings", "param_encodings", "encodings", "quantizer_args",
        "schema_version", "format", "TensorQuantOverrides", "name", "bw", "bitwidth", "scale",
        "offset", "y_scale", "y_zero_point", "axis", "enc_type", "dtype", "is_sym",
        "is_symmetric", "output_dtype", "min", "max", "kinds", "float_tensors", "bias_encodings",
    ]
)  # fmt: skip
MODEL = weights_model()


def _parse_only_studio_errors(doc, model=None) -> None:
    try:
        parse_encodings(doc, "fuzz.json", model=model)
    except StudioError as exc:
        assert str(exc).startswith("fuzz.json")


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(KEYS, json_value, max_size=5) | json_value)
def test_random_documents_raise_only_studio_errors(doc):
    _parse_only_studio_errors(doc)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


VALID_DOCS = {fmt: dump_encodings(full_set(), fmt) for fmt in FORMATS}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(FORMATS),
    data=st.data(),
    replacement=json_value,
    delete=st.booleans(),
    with_model=st.booleans(),
)
def test_mutated_valid_documents_raise_only_studio_errors(
    fmt, data, replacement, delete, with_model
):
    doc = copy.deepcopy(VALID_DOCS[fmt])
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    _parse_only_studio_errors(doc, MODEL if with_model else None)


def test_malformed_bytes_in_files_are_studio_errors(tmp_path):
    path = tmp_path / "e.json"
    for payload in [b"\xff\xfe\x00", b"", b"[", b'{"version": 1e999}', b"null", b'"str"']:
        path.write_bytes(payload)
        try:
            load_encodings(path)
        except StudioError as exc:
            assert str(path) in str(exc)
        else:  # pragma: no cover - every payload above is bad
            raise AssertionError(payload)


# ----------------------------------------------------------------------------- round trips
@st.composite
def encoding_sets(draw):
    count = draw(st.integers(1, 6))
    encs = []
    for i in range(count):
        kind = draw(st.sampled_from(["activation", "param", "bias"]))
        if draw(st.integers(0, 7)) == 0:
            encs.append(Encoding.float_fallback(f"t{i}", draw(st.sampled_from([16, 32])), kind))
            continue
        bw = 32 if kind == "bias" else draw(st.sampled_from([4, 8, 16]))
        symmetric = kind == "bias" or draw(st.booleans())
        channels = draw(st.integers(2, 5)) if kind != "activation" and draw(st.booleans()) else 1
        scale = draw(st.lists(st.floats(1e-9, 1e3), min_size=channels, max_size=channels))
        if symmetric:
            offset = [-(2 ** (bw - 1))] * channels
        else:
            offset = draw(
                st.lists(st.integers(-(2**bw - 1), 0), min_size=channels, max_size=channels)
            )
        axis = 0 if channels > 1 else None
        encs.append(Encoding.from_scale_offset(f"t{i}", scale, offset, bw, symmetric, axis, kind))
    return EncodingSet(encs)


@settings(max_examples=120, deadline=None)
@given(encs=encoding_sets(), fmt=st.sampled_from(FORMATS))
def test_random_valid_sets_round_trip(encs, fmt):
    text = json.dumps(dump_encodings(encs, fmt), allow_nan=False)
    back, _ = parse_encodings(json.loads(text), "rt.json")
    assert sorted(back) == sorted(encs)
    for name in encs:
        a, b = encs[name], back[name]
        assert b.kind == _kind_without_model(a, fmt)
        b.kind = a.kind
        rtol = 2**-23 if fmt == "ort" else 0.0  # ORT scales are float32
        assert a.same_as(b, rtol=rtol), (fmt, a, b)
        if not a.is_float:
            assert all(math.isclose(x, y, rel_tol=1e-6) for x, y in zip(a.min, b.min, strict=True))
            q = np.arange(0, a.qmax + 1, max(1, a.qmax // 7))
            if a.axis is None:
                np.testing.assert_allclose(a.dequantize(q), b.dequantize(q), rtol=1e-6)


def _kind_without_model(enc: Encoding, fmt: str) -> str:
    """What each format can say about a tensor's role when no model is given."""
    if fmt in ("studio", "ort"):
        return enc.kind  # both carry it
    if fmt in ("qnn", "aimet1"):  # two sections; a 32-bit parameter is a bias
        if enc.kind == "activation":
            return "activation"
        return "bias" if not enc.is_float and enc.bitwidth == 32 else "param"
    # aimet2: one list; int32 is a bias, an axis marks a weight
    if not enc.is_float and enc.bitwidth == 32:
        return "bias"
    return "param" if enc.per_channel else "activation"
