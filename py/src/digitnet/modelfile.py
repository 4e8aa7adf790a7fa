"""Reading a model file safely: every size is checked before anything big is allocated.

A model file is an ``.npz`` (a zip of ``.npy`` members): ``format`` (the string
``"digitnet-model"``), ``version`` (int), ``architecture`` (JSON list of layer specs) and
one float array per parameter, ``p0, p1, ...``. ``read`` checks it cheapest first:

1. the file size (``MAX_FILE_BYTES``);
2. the zip directory, read from the end of the file before any member: member count,
   names, compression method, declared sizes (deflate cannot expand data more than
   ~1032x, so a higher ratio is a forged directory);
3. the three small members (format marker, version, architecture JSON);
4. the architecture, worked out on paper without building a layer: known layer types,
   shapes that fit a 784-pixel input, ``MAX_PARAMETERS``, ``MAX_FLOPS`` per example,
   ``MAX_ACTIVATION`` (largest intermediate array per example), a final Softmax over 10;
5. each weight member's npy header (dtype, shape) against the architecture, and its
   declared size against its header;
6. only then the weights themselves, which must be finite.

The caps are generous for what digitnet trains: the MLP preset has 235,146 parameters and
0.47 MFLOPs per example, the CNN 215,370 parameters, 6.09 MFLOPs and a largest
intermediate of 78,400 numbers. Every refusal is a ``ModelFileError`` whose message is one
plain sentence. Nothing is ever unpickled: an object array is refused from its header.
"""
from __future__ import annotations

import io
import json
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

FORMAT_NAME = "digitnet-model"
FORMAT_VERSION = 1

MAX_PARAMETERS = 4_000_000       # ~17x either preset
MAX_FLOPS = 100_000_000          # per example; ~16x the CNN
MAX_ACTIVATION = 1_000_000       # numbers in the largest per-example intermediate; ~13x the CNN
MAX_LAYERS = 64
MAX_FILE_BYTES = MAX_PARAMETERS * 8 + 2**20   # every parameter as float64, plus headers
MAX_SMALL_MEMBER = 256 * 1024    # format, version and architecture members
MAX_DIRECTORY_BYTES = 64 * 1024
MAX_DEFLATE_RATIO = 1100         # deflate's limit is ~1032:1
INPUT_SHAPE = (784,)
N_CLASSES = 10


class ModelFileError(ValueError):
    """A model file is truncated, not a digitnet model, too big, or does not match its
    architecture. The message is one plain sentence."""


@dataclass(frozen=True)
class Cost:
    """What an architecture needs: its parameter shapes, FLOPs per example and the size
    (in numbers) of its largest per-example intermediate array."""
    param_shapes: list[tuple[int, ...]]
    flops: int
    peak_activation: int

    @property
    def parameters(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes)


@dataclass(frozen=True)
class ModelContents:
    """A checked model file: layer specs and one array per parameter (model order)."""
    specs: list[dict]
    arrays: list[np.ndarray]


# ---------------------------------------------------------------- architecture on paper

def _int(spec: dict, key: str, minimum: int = 1, default: int | None = None) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelFileError(f"The model's {spec['type']} layer has an invalid {key} ({value!r}).")
    return value


def _keys(spec: dict, allowed: set[str]) -> None:
    extra = set(spec) - allowed - {"type"}
    if extra:
        raise ModelFileError(f"The model's {spec['type']} layer has unknown settings "
                             f"({', '.join(sorted(map(str, extra)))}).")


def _image(shape: tuple, kind: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ModelFileError(f"The model's {kind} layer gets input of shape {shape}, "
                             "not (channels, height, width).")
    return shape


def architecture_cost(specs) -> Cost:
    """Walk the layer specs from a (784,) input without allocating anything; raises
    ModelFileError for an unknown layer, a shape that does not fit, a missing final
    Softmax over 10 classes, or a model over the caps."""
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        raise ModelFileError("The model file's architecture is not a list of layers.")
    if len(specs) > MAX_LAYERS:
        raise ModelFileError(f"The model has {len(specs)} layers, more than the {MAX_LAYERS} "
                             "digitnet accepts.")
    shape, flops, peak, params = INPUT_SHAPE, 0, math.prod(INPUT_SHAPE), []
    for index, spec in enumerate(specs):
        kind = spec.get("type")
        size = math.prod(shape)
        if kind == "Linear":
            _keys(spec, {"n_in", "n_out", "init"})
            n_in, n_out = _int(spec, "n_in"), _int(spec, "n_out")
            if shape != (n_in,):
                raise ModelFileError(f"The model's Linear layer expects {n_in} inputs but gets "
                                     f"shape {shape}.")
            if spec.get("init", "uniform") not in ("uniform", "he"):
                raise ModelFileError("The model's Linear layer has an invalid init.")
            params += [(n_in, n_out), (n_out,)]
            flops += 2 * n_in * n_out
            shape = (n_out,)
        elif kind in ("ReLU", "LeakyReLU"):
            _keys(spec, {"alpha"} if kind == "LeakyReLU" else set())
            alpha = spec.get("alpha", 0.2)
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
                    or not math.isfinite(alpha):
                raise ModelFileError("The model's LeakyReLU layer has an invalid alpha.")
            flops += size
        elif kind == "Softmax":
            _keys(spec, set())
            if index != len(specs) - 1:
                raise ModelFileError("The model has a Softmax layer before its last layer.")
            flops += 3 * size
        elif kind == "Reshape":
            _keys(spec, {"shape"})
            new = spec.get("shape")
            if not isinstance(new, list) or not new or any(
                    isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in new) \
                    or math.prod(new) != size:
                raise ModelFileError(f"The model's Reshape layer cannot reshape {size} numbers "
                                     f"to {new!r}.")
            shape = tuple(new)
        elif kind == "Flatten":
            _keys(spec, set())
            shape = (size,)
        elif kind == "Conv2D":
            _keys(spec, {"in_channels", "out_channels", "kernel_size", "stride", "padding"})
            c, h, w = _image(shape, kind)
            c_in, f = _int(spec, "in_channels"), _int(spec, "out_channels")
            k, s = _int(spec, "kernel_size"), _int(spec, "stride", default=1)
            p = _int(spec, "padding", minimum=0, default=0)
            if c != c_in:
                raise ModelFileError(f"The model's Conv2D layer expects {c_in} channels but "
                                     f"gets {c}.")
            h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if h_out < 1 or w_out < 1:
                raise ModelFileError(f"The model's Conv2D kernel ({k}x{k}) is larger than its "
                                     f"{h}x{w} input.")
            params += [(f, c, k, k), (f,)]
            flops += 2 * f * c * k * k * h_out * w_out
            # The padded input and the im2col matrix are the big intermediates.
            peak = max(peak, c * (h + 2 * p) * (w + 2 * p), c * k * k * h_out * w_out)
            shape = (f, h_out, w_out)
        elif kind == "MaxPool2D":
            _keys(spec, {"size", "stride"})
            c, h, w = _image(shape, kind)
            k = _int(spec, "size")
            s = _int(spec, "stride", default=k)
            h_out, w_out = (h - k) // s + 1, (w - k) // s + 1
            if h_out < 1 or w_out < 1:
                raise ModelFileError(f"The model's MaxPool2D window ({k}x{k}) is larger than "
                                     f"its {h}x{w} input.")
            flops += c * k * k * h_out * w_out
            shape = (c, h_out, w_out)
        else:
            raise ModelFileError(f"The model file has an unknown layer type ({str(kind)[:40]!r}).")
        peak = max(peak, math.prod(shape))
        cost = Cost(params, flops, peak)
        if cost.parameters > MAX_PARAMETERS:
            raise ModelFileError(f"The model has more than {MAX_PARAMETERS:,} parameters, "
                                 "the most digitnet accepts.")
        if flops > MAX_FLOPS:
            raise ModelFileError(f"The model needs more than {MAX_FLOPS:,} operations per "
                                 "image, the most digitnet accepts.")
        if peak > MAX_ACTIVATION:
            raise ModelFileError(f"The model holds more than {MAX_ACTIVATION:,} numbers per "
                                 "image between layers, the most digitnet accepts.")
    if specs[-1].get("type") != "Softmax":
        raise ModelFileError("The model's last layer is not a Softmax, so its outputs are "
                             "not probabilities.")
    if shape != (N_CLASSES,):
        raise ModelFileError(f"The model outputs {math.prod(shape)} values per image, not "
                             f"{N_CLASSES} digit probabilities.")
    return cost


# ---------------------------------------------------------------- the zip container

def _directory_size(blob: bytes) -> tuple[int, int]:
    """(member count, central directory bytes) from the zip's end record."""
    end = blob.rfind(b"PK\x05\x06", max(0, len(blob) - 22 - 65535))
    if end < 0 or len(blob) - end < 22:
        raise ModelFileError("This file is not a digitnet model file (it is not a complete "
                             ".npz archive).")
    count, size = struct.unpack("<HI", blob[end + 10:end + 16])
    return count, size


def _open_zip(blob: bytes) -> zipfile.ZipFile:
    if len(blob) > MAX_FILE_BYTES:
        raise ModelFileError(f"The file is {len(blob) / 1e6:,.1f} MB; digitnet model files are "
                             f"at most {MAX_FILE_BYTES / 1e6:.1f} MB.")
    count, size = _directory_size(blob)
    if count > 3 + 2 * MAX_LAYERS or size > MAX_DIRECTORY_BYTES:
        raise ModelFileError("The file holds far more members than a digitnet model file.")
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error):
        raise ModelFileError("This file is not a digitnet model file (it is not a readable "
                             ".npz archive).") from None
    total = 0
    for info in zf.infolist():
        encrypted = info.flag_bits & 1
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or encrypted:
            raise ModelFileError("The model file uses a compression or encryption digitnet "
                                 "does not read.")
        if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1):
            raise ModelFileError("The model file's zip directory claims an impossible "
                                 "compression ratio.")
        total += info.file_size
    if total > MAX_FILE_BYTES:
        raise ModelFileError(f"The model file unpacks to more than {MAX_FILE_BYTES / 1e6:.1f} MB, "
                             "more than any digitnet model.")
    return zf


def _members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    members = {}
    for info in zf.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name in members:
            raise ModelFileError(f"The model file holds two arrays named {name[:40]!r}.")
        members[name] = info
    return members


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    major, _ = np.lib.format.read_magic(f)
    read = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
    if major not in read:
        raise ValueError("unsupported npy version")
    return read[major](f, max_header_size=10000)


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, check) -> np.ndarray:
    """One member: header first, ``check(shape, dtype)`` (raises ModelFileError), its
    declared size against the header, and only then the data."""
    try:
        with zf.open(info) as f:
            shape, fortran, dtype = _read_header(f)
            check(shape, dtype)
            nbytes = math.prod(shape) * dtype.itemsize
            if info.file_size != f.tell() + nbytes:
                raise ModelFileError(f"The model file's array {info.filename[:-4]!r} is not as "
                                     "long as its header says.")
            data = f.read(nbytes)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
            NotImplementedError, SyntaxError):
        raise ModelFileError("The model file is damaged (an array in it cannot be read).") from None
    if len(data) != nbytes:
        raise ModelFileError("The model file is damaged (an array in it is cut short).")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _small(zf, members, name: str, kinds: str) -> np.ndarray:
    info = members.get(name)
    if info is None and name == "format":
        raise ModelFileError("This file is not a digitnet model file (it has no "
                             f"'{FORMAT_NAME}' format marker).")
    if info is None:
        raise ModelFileError(f"The model file has no {name} entry.")
    if info.file_size > MAX_SMALL_MEMBER:
        raise ModelFileError(f"The model file's {name} entry is implausibly large.")

    def check(shape, dtype):
        if shape != () or dtype.kind not in kinds:
            raise ModelFileError(f"The model file's {name} entry is not a single value.")
    return _read_array(zf, info, check)


# ---------------------------------------------------------------- the whole file

def read(blob: bytes) -> ModelContents:
    """Check ``.npz`` bytes in the order described above; raises ModelFileError."""
    zf = _open_zip(bytes(blob))
    members = _members(zf)
    if str(_small(zf, members, "format", "US")) != FORMAT_NAME:
        raise ModelFileError(f"This file is not a digitnet model file (it has no "
                             f"'{FORMAT_NAME}' format marker).")
    version = int(_small(zf, members, "version", "iu"))
    if version != FORMAT_VERSION:
        raise ModelFileError(f"The model file has format version {version}; this digitnet "
                             f"reads version {FORMAT_VERSION}.")
    try:
        specs = json.loads(str(_small(zf, members, "architecture", "US")))
    except ValueError as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError("The model file has an invalid architecture (not JSON).") from None
    cost = architecture_cost(specs)
    stored = [n for n in members if n.startswith("p") and n[1:].isdigit()]
    expected = {f"p{i}" for i in range(len(cost.param_shapes))}
    if set(stored) != expected:
        raise ModelFileError(f"The architecture needs {len(cost.param_shapes)} weight arrays "
                             f"but the file has {len(stored)}.")
    arrays = []
    for i, expected in enumerate(cost.param_shapes):
        def check(shape, dtype, i=i, expected=expected):
            if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
                raise ModelFileError(f"Weight array p{i} holds {dtype.name} values, not floats.")
            if tuple(shape) != expected:
                raise ModelFileError(f"Weight array p{i} should have shape {expected} but the "
                                     f"file has {tuple(shape)}.")
        value = _read_array(zf, members[f"p{i}"], check)
        if not np.isfinite(value).all():
            raise ModelFileError(f"Weight array p{i} holds values that are not finite numbers.")
        arrays.append(value)
    return ModelContents(specs, arrays)
