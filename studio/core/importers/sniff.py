"""What a model file really is, decided from its bytes, without running anything in it.

A ``.pt`` can be a TorchScript archive (``torch.jit.save``: code + constants, loadable without the
user's classes) or a pickle checkpoint (``torch.save(model)`` or a state_dict). Loading the second
kind means unpickling, which runs whatever the file says: the studio never does that. Zip entries
are listed and pickle streams are walked opcode by opcode with :mod:`pickletools` (which parses,
never executes), so a checkpoint is named for what it is and the user is told what to save instead.
"""

from __future__ import annotations

import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import BadInputError

TORCHSCRIPT = "torchscript"
EXPORTED_PROGRAM = "exported_program"
TFLITE = "tflite"

SAVE_INSTEAD = (
    "save the model with torch.export.save(torch.export.export(model, example_inputs), 'm.pt2') "
    "or torch.jit.save(torch.jit.trace(model, example_inputs), 'm.pt') and open that file"
)
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_MAX_PICKLE_BYTES = 64 * 1024 * 1024


class PickleCheckpointError(BadInputError):
    """A pickle-only checkpoint: the studio will not unpickle it."""


@dataclass(frozen=True)
class Sniffed:
    """The kind of a source file (one of the constants above) and a one-line description."""

    kind: str
    what: str


def sniff(path: str | Path) -> Sniffed:
    """Classify ``path`` or raise a :class:`BadInputError` that says what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError("file not found", path=str(path))
    with open(path, "rb") as fh:
        head = fh.read(16)
    if len(head) < 8:
        raise BadInputError(f"file is empty or truncated ({len(head)} bytes)", path=str(path))
    if head[4:8] == b"TFL3":
        return Sniffed(TFLITE, "TFLite / LiteRT flatbuffer")
    if head[:2] == b"PK":
        return _sniff_zip(path)
    if head[:2] in _PICKLE_MAGIC:
        raise PickleCheckpointError(
            f"this is a legacy pickle checkpoint ({_describe_pickle(path.read_bytes())}); "
            f"the studio never unpickles files, because that runs code from the file: "
            f"{SAVE_INSTEAD}",
            path=str(path),
        )
    raise BadInputError(
        "not a TorchScript archive, torch.export program or TFLite flatbuffer "
        f"(starts with bytes {head[:8].hex(' ')})",
        path=str(path),
    )


def _sniff_zip(path: Path) -> Sniffed:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
            if bad is not None:
                raise BadInputError(
                    f"archive entry '{bad}' is corrupt (CRC mismatch)", path=str(path)
                )
            entries = {n.split("/", 1)[1] if "/" in n else n for n in names}
            if "archive_format" in entries or any(n.startswith("models/") for n in entries):
                return Sniffed(EXPORTED_PROGRAM, "torch.export program (torch.export.save)")
            if "constants.pkl" in entries or any(n.startswith("code/") for n in entries):
                return Sniffed(TORCHSCRIPT, "TorchScript archive (torch.jit.save)")
            data_pkl = next((n for n in names if n.endswith("data.pkl")), None)
            if data_pkl is not None:
                info = zf.getinfo(data_pkl)
                if info.file_size > _MAX_PICKLE_BYTES:
                    what = f"a pickle of {info.file_size} bytes"
                else:
                    what = _describe_pickle(zf.read(data_pkl))
                raise PickleCheckpointError(
                    f"this is a torch.save pickle checkpoint ({what}); the studio never "
                    f"unpickles files, because that runs code from the file: {SAVE_INSTEAD}",
                    path=str(path),
                )
    except zipfile.BadZipFile as exc:
        raise BadInputError(f"truncated or corrupt archive ({exc})", path=str(path)) from exc
    except (OSError, EOFError) as exc:  # zlib/zip errors on damaged members
        raise BadInputError(f"unreadable archive ({exc})", path=str(path)) from exc
    raise BadInputError(
        "a zip archive, but neither TorchScript (code/, constants.pkl) nor torch.export "
        "(archive_format, models/)",
        path=str(path),
    )


def _describe_pickle(data: bytes) -> str:
    """Name what a pickle would build, from its GLOBAL opcodes, without building it."""
    globals_seen: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and len(strings) < 64:
                strings.append(str(arg))
            if opcode.name == "GLOBAL":
                globals_seen.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                globals_seen.append(f"{strings[-2]}.{strings[-1]}")
    except Exception as exc:  # noqa: BLE001 - a damaged stream is described, not raised
        return f"a damaged pickle stream: {exc}"
    classes = [
        g
        for g in globals_seen
        if not g.startswith(("torch._utils", "collections.")) and not g.endswith("Storage")
    ]
    if any(g.endswith("OrderedDict") for g in globals_seen) and not classes:
        return "a state_dict: tensors only, no model code"
    if classes:
        return "a pickled object of class " + ", ".join(dict.fromkeys(classes[:3]))
    return "a pickle with no recognisable model"
