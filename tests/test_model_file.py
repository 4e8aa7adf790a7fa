"""Hostile model files are refused fast, with bounded memory and a one-sentence message;
loaded models are checked on real test digits."""
import io
import json
import re
import struct
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from digitnet import data
from digitnet.layers import Linear, Softmax
from digitnet.model import Sequential, cnn, dumps, loads, mlp
from digitnet.modelcheck import POOR_ACCURACY, check_on_digits
from digitnet.modelfile import (MAX_ACTIVATION, MAX_FILE_BYTES, MAX_FLOPS, MAX_PARAMETERS,
                                ModelFileError, architecture_cost)

HEADER = {"format": np.array("digitnet-model"), "version": np.array(1)}


def npy(array=None, shape=None, descr="<f4", data=None):
    """One .npy member: from an array, or a header claiming ``shape`` followed by ``data``."""
    buf = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    else:
        np.lib.format.write_array_header_1_0(
            buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
        buf.write(data)
    return buf.getvalue()


def zip_of(members: dict, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in members.items():
            zf.writestr(name + ".npy", content)
    return buf.getvalue()


def model_members(specs) -> dict:
    members = {k: npy(v) for k, v in HEADER.items()}
    members["architecture"] = npy(np.array(json.dumps(specs)))
    return members


def huge_declared_layer():
    """~1 KB describing 784x300,000 weights, stored as tiny arrays."""
    specs = [{"type": "Linear", "n_in": 784, "n_out": 300_000, "init": "uniform"},
             {"type": "Linear", "n_in": 300_000, "n_out": 10, "init": "uniform"}, {"type": "Softmax"}]
    members = model_members(specs)
    members.update({f"p{i}": npy(np.zeros(3, np.float32)) for i in range(4)})
    return zip_of(members)


def lying_npy_header():
    """The MLP's architecture, but p0's header claims a 20,000 x 20,000 array (1.6 GB)."""
    members = model_members(mlp().architecture())
    members.update({f"p{i}": npy(p.value) for i, p in enumerate(mlp().parameters())})
    members["p0"] = npy(shape=(20_000, 20_000), data=b"\0" * 64)
    return zip_of(members)


def short_npy_data():
    """p0's header matches the architecture, but its data is 64 bytes long."""
    members = model_members(mlp().architecture())
    members.update({f"p{i}": npy(p.value) for i, p in enumerate(mlp().parameters())})
    members["p0"] = npy(shape=(784, 256), data=b"\0" * 64)
    return zip_of(members)


def zip_bomb():
    """A deflated member of 200 MB of zeros (~200 KB compressed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in model_members(mlp().architecture()).items():
            zf.writestr(name + ".npy", content)
        with zf.open("p0.npy", "w", force_zip64=True) as f:
            f.write(npy(shape=(50_000_000,), data=b""))
            chunk = bytes(2**22)
            for _ in range(50):
                f.write(chunk)
    return buf.getvalue()


def forged_directory():
    """A small deflated model whose zip directory claims p0 unpacks to 1.9 GB."""
    blob = bytearray(zip_of({**model_members(mlp().architecture()),
                             **{f"p{i}": npy(np.zeros_like(p.value)) for i, p in enumerate(mlp().parameters())}},
                            zipfile.ZIP_DEFLATED))
    entry = None
    for start in [m.start() for m in re.finditer(b"PK\x01\x02", bytes(blob))]:
        name_len = struct.unpack("<H", blob[start + 28:start + 30])[0]
        if blob[start + 46:start + 46 + name_len] == b"p0.npy":
            entry = start
    blob[entry + 24:entry + 28] = struct.pack("<I", 1_900_000_000)
    return bytes(blob)


def expensive_cnn():
    """Few parameters (205k) but 320 MFLOPs per image: what made a 'check' take minutes."""
    specs = [{"type": "Reshape", "shape": [1, 28, 28]},
             {"type": "Conv2D", "in_channels": 1, "out_channels": 64, "kernel_size": 5, "stride": 1, "padding": 2},
             {"type": "Conv2D", "in_channels": 64, "out_channels": 128, "kernel_size": 5, "stride": 1, "padding": 2},
             {"type": "Flatten"}, {"type": "Linear", "n_in": 128 * 784, "n_out": 1, "init": "he"},
             {"type": "Softmax"}]
    members = model_members(specs)
    members.update({f"p{i}": npy(np.zeros(1, np.float32)) for i in range(6)})
    return zip_of(members)


def random_bytes():
    return np.random.default_rng(0).integers(0, 256, 2_000_000, dtype=np.uint8).tobytes()


def oversized_file():
    return bytes(MAX_FILE_BYTES + 1)


def truncated_zip():
    blob = dumps(mlp())
    return blob[: len(blob) // 2]


def without_softmax():
    return dumps(Sequential(mlp().layers[:-1]))


def seven_outputs():
    return dumps(Sequential([Linear(784, 7), Softmax()]))


def nan_weights():
    model = mlp()
    model.parameters()[2].value[3, 5] = np.inf
    return dumps(model)


def pickled_array():
    buf = io.BytesIO()
    np.savez(buf, format=np.array([object()], dtype=object))
    return buf.getvalue()


def pickled_weights():
    members = model_members(mlp().architecture())
    members.update({f"p{i}": npy(p.value) for i, p in enumerate(mlp().parameters())})
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([object()] * 3, dtype=object), allow_pickle=True)
    members["p1"] = buf.getvalue()
    return zip_of(members)


HOSTILE = {
    "huge declared layer": (huge_declared_layer, "parameters"),
    "lying npy header": (lying_npy_header, "shape"),
    "short npy data": (short_npy_data, "not as long as its header"),
    "zip bomb": (zip_bomb, "unpacks to more than"),
    "forged zip directory": (forged_directory, "compression ratio"),
    "expensive cnn": (expensive_cnn, "operations per image"),
    "random bytes": (random_bytes, "not a digitnet model file"),
    "oversized file": (oversized_file, "at most"),
    "truncated zip": (truncated_zip, "not a digitnet model file"),
    "missing softmax": (without_softmax, "not a Softmax"),
    "wrong output count": (seven_outputs, "outputs 7 values"),
    "non-finite weights": (nan_weights, "not finite"),
    "pickled format marker": (pickled_array, "format entry is not a single value"),
    "pickled weight array": (pickled_weights, "holds object values, not floats"),
}


def plain_sentence(message: str) -> bool:
    return (message[:1].isupper() and message.endswith(".") and "\n" not in message
            and not re.search(r"Error|Exception|pickle", message))


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_files_are_refused_fast_in_bounded_memory(name):
    make, fragment = HOSTILE[name]
    blob = make()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError) as refused:
            loads(blob)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert fragment in message
    assert plain_sentence(message), message
    assert elapsed < 1.0, f"{name}: refused after {elapsed:.2f} s"
    # Each hostile file declares hundreds of MB or more; refusing holds a few MB at most.
    assert peak < 4_000_000, f"{name}: peak {peak / 1e6:.1f} MB"


def test_the_caps_are_generous_for_the_presets():
    for make in (mlp, cnn):
        cost = architecture_cost(make().architecture())
        assert 10 * cost.parameters <= MAX_PARAMETERS
        assert 10 * cost.flops <= MAX_FLOPS
        assert 10 * cost.peak_activation <= MAX_ACTIVATION


def test_cost_of_the_cnn_matches_a_hand_count():
    cost = architecture_cost(cnn().architecture())
    assert cost.param_shapes == [p.value.shape for p in cnn().parameters()]
    macs = 16 * 25 * 28 * 28 + 32 * 16 * 25 * 14 * 14 + 1568 * 128 + 128 * 10
    elementwise = 16 * 784 + 16 * 196 * 4 + 32 * 196 + 32 * 49 * 4 + 128 + 30
    assert cost.flops == 2 * macs + elementwise


@pytest.mark.parametrize("make", [mlp, cnn])
@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_shipped_format_still_loads_stored_or_deflated(make, compression):
    model = make(seed=5)
    with zipfile.ZipFile(io.BytesIO(dumps(model))) as zf:
        members = {i.filename[:-4]: zf.read(i) for i in zf.infolist()}
    again = loads(zip_of(members, compression))
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    assert np.array_equal(again.predict_proba(x), model.predict_proba(x))


def test_float64_files_load_as_float64():
    model = Sequential([Linear(784, 10, dtype=np.float64), Softmax()])
    again = loads(dumps(model))
    assert again.dtype == np.float64
    assert np.array_equal(again.parameters()[0].value, model.parameters()[0].value)


# ---------------------------------------------------------------- checks on test digits

@pytest.fixture(scope="module")
def digits():
    ds = data.load_bundle()
    return ds.x_test[:500], ds.y_test[:500]


@pytest.fixture(scope="module")
def trained(tutorial_mlp):
    return tutorial_mlp[0]


def test_a_trained_model_passes_and_is_not_poor(trained, digits):
    result = check_on_digits(trained, *digits)
    assert result.n == 500 and result.accuracy > 0.85 and not result.poor


def test_a_chance_level_model_is_flagged_poor(trained, digits):
    model = loads(dumps(trained))
    w = model.parameters()[-2].value
    w[:] = np.roll(w, 3, axis=1)   # every class answered as another: still probabilities
    result = check_on_digits(model, *digits)
    assert result.accuracy < 0.2 and result.poor and POOR_ACCURACY == 0.5


def test_huge_finite_weights_give_nan_outputs_and_are_refused(digits):
    model = mlp()
    for p in model.parameters():
        p.value[...] = 3e38
    model = loads(dumps(model))     # finite, so the file itself reads
    with pytest.raises(ModelFileError, match="not finite") as refused:
        check_on_digits(model, *digits)
    assert plain_sentence(str(refused.value))


def test_outputs_that_are_not_probabilities_are_refused(digits):
    body = Sequential(mlp().layers[:-1] + [Softmax()])
    body.layers[-1].forward = lambda x, training=False: x   # a "Softmax" that is not one
    with pytest.raises(ModelFileError, match="not probabilities"):
        check_on_digits(body, *digits)
    with pytest.raises(ModelFileError, match="not a Softmax"):
        check_on_digits(Sequential(mlp().layers[:-1] + [Linear(10, 10)]), *digits)
