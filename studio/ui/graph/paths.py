"""Build large QPainterPaths from numpy arrays in one call instead of one Python call per point.

Why: a 20,000-node model has ~23,000 edges; ``moveTo``/``lineTo`` per point costs ~0.1 s of
Python, while streaming the path's binary form into ``QDataStream >> QPainterPath`` (the trick
pyqtgraph's ``arrayToQPath`` uses) costs a few milliseconds. The format is Qt's own:
``count(i4)`` then per element ``type(i4) x(f8) y(f8)``, then ``cStart(i4) fillRule(i4)``, all
big-endian; element type 0 starts a subpath (moveTo), 1 continues it (lineTo).
"""

from __future__ import annotations

import struct

import numpy as np
from PySide6.QtCore import QByteArray, QDataStream, QIODevice
from PySide6.QtGui import QPainterPath

_ELEMENT = np.dtype([("c", ">i4"), ("x", ">f8"), ("y", ">f8")])


def path_from_elements(x: np.ndarray, y: np.ndarray, kind: np.ndarray) -> QPainterPath:
    """A path from element arrays: ``kind`` 0 = moveTo, 1 = lineTo (Qt's element types)."""
    n = int(len(x))
    path = QPainterPath()
    if n == 0:
        return path
    buffer = bytearray(4 + n * _ELEMENT.itemsize + 8)
    struct.pack_into(">i", buffer, 0, n)
    struct.pack_into(">ii", buffer, 4 + n * _ELEMENT.itemsize, 0, 1)  # cStart, WindingFill
    arr = np.frombuffer(buffer, dtype=_ELEMENT, count=n, offset=4)
    arr["c"] = kind
    arr["x"] = x
    arr["y"] = y
    data = QByteArray(bytes(buffer))  # keep a reference: the stream does not own it
    stream = QDataStream(data, QIODevice.OpenModeFlag.ReadOnly)
    stream >> path
    return path


def polylines_path(points: np.ndarray, offsets: np.ndarray) -> QPainterPath:
    """One path holding many polylines: polyline i is ``points[offsets[i]:offsets[i+1]]``."""
    if len(points) == 0:
        return QPainterPath()
    kind = np.ones(len(points), dtype=np.int32)
    starts = np.asarray(offsets[:-1], dtype=np.int64)
    starts = starts[starts < len(points)]
    kind[starts] = 0
    return path_from_elements(points[:, 0], points[:, 1], kind)


def rects_path(boxes: np.ndarray) -> QPainterPath:
    """One fillable path of many rectangles (x, y, w, h rows)."""
    if len(boxes) == 0:
        return QPainterPath()
    x, y, w, h = (boxes[:, i] for i in range(4))
    xs = np.column_stack([x, x + w, x + w, x, x]).ravel()
    ys = np.column_stack([y, y, y + h, y + h, y]).ravel()
    kind = np.ones(len(xs), dtype=np.int32)
    kind[0::5] = 0
    return path_from_elements(xs, ys, kind)


def arrows_path(tips: np.ndarray, size: float = 7.0) -> QPainterPath:
    """Downward arrowheads (closed triangles) whose points sit at ``tips`` (x, y rows)."""
    if len(tips) == 0:
        return QPainterPath()
    x, y = tips[:, 0], tips[:, 1]
    xs = np.column_stack([x, x - size * 0.55, x + size * 0.55, x]).ravel()
    ys = np.column_stack([y, y - size, y - size, y]).ravel()
    kind = np.ones(len(xs), dtype=np.int32)
    kind[0::4] = 0
    return path_from_elements(xs, ys, kind)


def curves_path(points: np.ndarray, offsets: np.ndarray) -> QPainterPath:
    """Like :func:`polylines_path`, but each segment is a vertical S-curve (a cubic Bézier).

    Edges leave a box downwards and enter the next one from above, as in Netron; the control
    points sit half a segment below the start and above the end. Element types: 2 = curveTo
    (first control point), 3 = curve data (second control point, then the end point).
    """
    n = len(points)
    if n == 0:
        return QPainterPath()
    starts = np.asarray(offsets[:-1], dtype=np.int64)
    is_start = np.zeros(n, dtype=bool)
    is_start[starts[starts < n]] = True
    seg_end = np.nonzero(~is_start)[0]  # every point but a polyline's first ends a segment
    a, b = points[seg_end - 1], points[seg_end]
    half = (b[:, 1] - a[:, 1]) * 0.5
    m = len(seg_end)
    # per segment: [moveTo a if it starts a polyline] curveTo c1, data c2, data b
    lead = is_start[seg_end - 1]
    count = m * 3 + int(lead.sum())
    x = np.empty(count)
    y = np.empty(count)
    kind = np.empty(count, dtype=np.int32)
    pos = np.arange(m) * 3 + np.cumsum(lead)  # index of each segment's curveTo element
    move = pos[lead] - 1
    x[move], y[move], kind[move] = a[lead, 0], a[lead, 1], 0
    x[pos], y[pos], kind[pos] = a[:, 0], a[:, 1] + half, 2
    x[pos + 1], y[pos + 1], kind[pos + 1] = b[:, 0], b[:, 1] - half, 3
    x[pos + 2], y[pos + 2], kind[pos + 2] = b[:, 0], b[:, 1], 3
    return path_from_elements(x, y, kind)
