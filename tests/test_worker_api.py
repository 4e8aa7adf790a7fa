"""The page worker's Python side (digitnet.worker_api.WorkerAPI), run in CPython on the
bundled data: every method web/worker.js calls."""
import numpy as np
import pytest

from digitnet import ModelFileError, backend, cnn, data, dumps, explain, loads, mlp
from digitnet.recipes import SettingError, get_recipe
from digitnet.examples import ExamplesError
from digitnet.finetune import FinetuneError
from digitnet.train import evaluate, fit_recipe
from digitnet.worker_api import WorkerAPI


@pytest.fixture(scope="module")
def bundle():
    return data.load_bundle()


@pytest.fixture(scope="module")
def trained_bytes(bundle):
    """An MLP trained for 2 epochs of the tutorial recipe (~90% on the test digits)."""
    model, _ = fit_recipe(get_recipe("mlp", "tutorial").with_overrides(epochs=2), bundle)
    return dumps(model)


@pytest.fixture
def api(bundle, trained_bytes):
    a = WorkerAPI(bundle)
    a.use_model(trained_bytes)
    return a


def as_bytes(img01):
    return (np.clip(img01, 0, 1) * 255 + 0.5).astype(np.uint8).tobytes()


# ---- models

def test_use_model_describes_it_and_a_bad_file_changes_nothing(api, bundle, trained_bytes):
    digit = as_bytes(bundle.x_test[0])
    before = api.predict(digit, 28, 28, raw=True)["probs"]
    for bad in (trained_bytes[:500], b"not a model", dumps(mlp())[:-10]):
        with pytest.raises(ModelFileError):
            api.use_model(bad)
    np.testing.assert_array_equal(api.predict(digit, 28, 28, raw=True)["probs"], before)
    assert api.use_model(dumps(cnn(seed=1))).startswith("CNN, ")
    assert api.use_model(bytearray(trained_bytes)) == "MLP 784-256-128-10, 235,146 parameters"


def test_check_model_measures_without_switching(api, bundle, trained_bytes):
    other = dumps(mlp(seed=5))   # untrained: near chance
    res = api.check_model(other)
    assert set(res) == {"architecture", "accuracy", "poor"}
    want = float((loads(other).predict(bundle.x_test) == bundle.y_test).mean())
    assert res["accuracy"] == want and res["accuracy"] < 0.3 and res["poor"]
    trained = api.check_model(trained_bytes)
    assert trained["accuracy"] > 0.85 and not trained["poor"]
    # The pad still uses the trained model.
    probs = api.predict(as_bytes(bundle.x_test[3]), 28, 28, raw=True)["probs"]
    assert probs.argmax() == loads(trained_bytes).predict(bundle.x_test[3:4])[0]
    with pytest.raises(ModelFileError):
        api.check_model(b"PK\x03\x04")


def test_load_data_is_lazy_and_counts_the_test_digits():
    a = WorkerAPI()
    assert a._data is None
    assert a.load_data() == 2000
    assert a.data is a.data   # loaded once


# ---- classifying

def test_predict_a_raw_test_digit(api, bundle, trained_bytes):
    model = loads(trained_bytes)
    for i in (0, 1, 2, 50):
        x = np.frombuffer(as_bytes(bundle.x_test[i]), np.uint8)
        out = api.predict(x.tobytes(), 28, 28, raw=True)
        assert out["probs"].shape == (10,) and out["probs"].dtype == np.float64
        assert abs(out["probs"].sum() - 1) < 1e-5
        np.testing.assert_allclose(out["probs"], model.predict_proba(x[None] / 255.0)[0], rtol=1e-5)
        np.testing.assert_array_equal(out["preview"], x)    # raw: the input as it is
        assert out["preview"].dtype == np.uint8


def test_predict_preprocesses_a_drawing_of_any_size_and_polarity(api, bundle):
    """A test digit drawn big (4x) in black ink on white is framed back into MNIST's 28x28
    and classified like the digit itself."""
    agree = 0
    for i in range(20):
        img = bundle.x_test[i].reshape(28, 28)
        big = np.kron(img, np.ones((4, 4), dtype=np.float32))
        paper = 1.0 - np.pad(big, 20)                      # dark ink on light paper
        out = api.predict(as_bytes(paper), paper.shape[0], paper.shape[1])
        assert out["preview"].shape == (784,) and out["preview"].max() == 255
        raw = api.predict(as_bytes(img), 28, 28, raw=True)
        agree += out["probs"].argmax() == raw["probs"].argmax()
    assert agree >= 18


def test_predict_blank_or_malformed_input(api):
    assert api.predict(bytes(28 * 28), 28, 28, raw=True) is None
    assert api.predict(np.full(100 * 80, 255, np.uint8).tobytes(), 100, 80) is None  # white paper
    with pytest.raises(ValueError, match="28x28"):
        api.predict(bytes(30 * 30), 30, 30, raw=True)
    with pytest.raises(ValueError, match="10x10"):
        api.predict(bytes(99), 10, 10)


def test_predict_rejects_non_digits_and_tiny_images_with_a_sentence(api, bundle):
    """A blank pad is None; a dot, a frame or a scribble as the pad sends them (white on
    black, 112 px) and a tiny upload get a sentence and no probabilities."""
    import drawings

    assert api.predict(bytes(112 * 112), 112, 112) is None
    digit = as_bytes(bundle.x_test[0])
    before = api.predict(digit, 28, 28, raw=True)
    for strokes in ([[(0.4, 0.6)]],                                       # a dot
                    [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],           # a frame
                    [[(0.02, 0.03), (0.97, 0.03)]]):                     # along the border
        img = drawings.to_image(drawings.paint(strokes, 112))
        out = api.predict(img.tobytes(), 112, 112)
        assert set(out) == {"rejected"}, strokes
        assert out["rejected"].startswith("That doesn't look like a digit: ")
        assert out["rejected"].endswith(".") and "Error" not in out["rejected"]
    for h, w in ((1, 1), (1, 40), (7, 7)):
        out = api.predict(np.full(h * w, 255, np.uint8).tobytes(), h, w)
        assert out == {"rejected": f"No digit found: the image is only {w}x{h} pixels."}
    # Rejections classify nothing: the last digit (for the feature maps) is unchanged.
    np.testing.assert_array_equal(np.round(api.last_input.reshape(784) * 255), np.frombuffer(digit, np.uint8))
    np.testing.assert_array_equal(api.predict(digit, 28, 28, raw=True)["probs"], before["probs"])


def test_predict_rejects_a_drawing_along_the_pad_border(api, bundle):
    """The page sends a drawing re-rendered to fit its extent, where a stroke along the
    pad's top edge is a plain bar mid-image; ``placed`` (as on the pad) shows the edge."""
    import drawings

    along_top = drawings.to_image(drawings.paint([[(0.05, 0.03), (0.95, 0.03)]], 112))
    fitted = drawings.to_image(drawings.paint([[(0.05, 0.5), (0.95, 0.5)]], 112, pen=0.12))
    assert "probs" in api.predict(fitted.tobytes(), 112, 112)        # alone: a bar
    out = api.predict(fitted.tobytes(), 112, 112, placed=along_top.tobytes())
    assert out == {"rejected": "That doesn't look like a digit: "
                               "it is only lines along the edge of the image."}
    # A digit drawn on the pad is classified as before when its placement is given too.
    on_pad = drawings.to_image(drawings.pad_digit(bundle.x_test[0], np.random.default_rng(1), 112))
    alone = api.predict(on_pad.tobytes(), 112, 112)
    np.testing.assert_array_equal(
        api.predict(on_pad.tobytes(), 112, 112, placed=on_pad.tobytes())["probs"], alone["probs"])
    with pytest.raises(ValueError, match="112x112"):
        api.predict(fitted.tobytes(), 112, 112, placed=bytes(10))


def fitted(strokes, side=112, pen_fraction=0.14):
    """Strokes as web/js/pad.js's paintFitted sends them: scaled to fill the image, the pen
    ``pen_fraction`` of the drawing's extent (uint8, white on black)."""
    import drawings

    pts = np.array([p for s in strokes for p in s], dtype=float)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = max(float((hi - lo).max()), 0.01)
    scale = 0.9 / (extent * (1 + pen_fraction))     # of the image side
    moved = [[tuple((np.array(p) - (lo + hi) / 2) * scale + 0.5) for p in s] for s in strokes]
    return drawings.to_image(drawings.paint(moved, side, pen=pen_fraction * extent * scale))


def test_predict_reads_a_digit_inside_a_frame_drawn_along_the_pad_border(api):
    """Fitted, a frame drawn along the pad's border is thick ink all round (too much ink);
    as it lies on the pad it is a border line, dropped, and the 7 inside is read."""
    import drawings

    seven = [[(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]]
    frame = [[(0.02, 0.02), (0.98, 0.02), (0.98, 0.98), (0.02, 0.98), (0.02, 0.03)]]
    alone = api.predict(fitted(seven).tobytes(), 112, 112, placed=drawings.to_image(
        drawings.paint(seven, 112)).tobytes())
    assert int(np.argmax(alone["probs"])) == 7
    framed, placed = fitted(frame + seven), drawings.to_image(drawings.paint(frame + seven, 112))
    assert "rejected" in api.predict(framed.tobytes(), 112, 112)          # without its placement
    out = api.predict(framed.tobytes(), 112, 112, placed=placed.tobytes())
    assert "probs" in out and int(np.argmax(out["probs"])) == 7, out
    # A frame alone is still only lines along the edge.
    only = api.predict(fitted(frame).tobytes(), 112, 112,
                       placed=drawings.to_image(drawings.paint(frame, 112)).tobytes())
    assert only == {"rejected": "That doesn't look like a digit: it is only lines along the edge of the image."}


def test_feature_maps_of_the_last_digit(bundle):
    model = cnn(seed=3)
    fresh = WorkerAPI(bundle)
    fresh.use_model(dumps(model))
    assert fresh.feature_maps() is None          # nothing classified yet
    digit = bundle.x_test[7]
    fresh.predict(as_bytes(digit), 28, 28, raw=True)
    maps = fresh.feature_maps()
    want = explain.feature_maps(model, np.frombuffer(as_bytes(digit), np.uint8).astype(np.float32) / 255.0)
    assert (maps["n"], maps["h"], maps["w"]) == (16, 28, 28)
    assert maps["peak"] == pytest.approx(float(want.max()), rel=1e-5)
    np.testing.assert_array_equal(maps["pixels"], explain.to_uint8(want).reshape(-1))
    fresh.predict(bytes(784), 28, 28, raw=True)   # a blank pad keeps the last digit
    assert fresh.feature_maps()["peak"] == maps["peak"]
    fresh.use_model(dumps(mlp()))
    assert fresh.feature_maps() is None           # an MLP has none


def test_insight_shows_the_first_layer(api, trained_bytes):
    info = api.insight()
    assert (info["kind"], info["n"], info["h"], info["w"]) == ("mlp", 16, 28, 28)
    want = explain.first_layer_weights(loads(trained_bytes))
    np.testing.assert_array_equal(info["pixels"], explain.to_uint8(want, signed=True).reshape(-1))
    assert "16" in info["title"]
    model = cnn(seed=4)
    api.use_model(dumps(model))
    info = api.insight()
    assert (info["kind"], info["n"], info["h"], info["w"]) == ("cnn", 16, 5, 5)
    assert info["pixels"].dtype == np.uint8 and info["pixels"].size == 16 * 25
    filters = info["pixels"].reshape(16, 25)   # each filter scaled by its own largest |weight|
    assert ((filters.min(axis=1) == 0) | (filters.max(axis=1) == 255)).all()


def test_gallery_one_digit_per_class_then_mistakes(api, bundle, trained_bytes):
    preds = loads(trained_bytes).predict(bundle.x_test)
    wrong = np.flatnonzero(preds != bundle.y_test)
    g = api.gallery(12)
    assert g["n"] == 12 and g["images"].shape == (12 * 784,)
    assert list(g["labels"][:10]) == list(range(10))
    assert g["wrong"] == len(wrong)
    assert all(g["preds"][10:] != g["labels"][10:])              # the two mistakes
    images = g["images"].reshape(12, 784)
    for k in range(12):
        i = int(np.flatnonzero((np.abs(bundle.x_test - images[k] / 255.0) < 0.003).all(axis=1))[0])
        assert g["labels"][k] == bundle.y_test[i] and g["preds"][k] == preds[i]
    assert ((0 < g["conf"]) & (g["conf"] <= 1)).all()
    assert api.gallery(0)["n"] == 1 and api.gallery(1000)["n"] == 64


# ---- training

def small_api(bundle, trained_bytes):
    """A worker whose training split is a balanced 1/8 of the bundle (fast runs)."""
    ds = data.Dataset(bundle.x_train[::8], bundle.y_train[::8], bundle.x_test[::10], bundle.y_test[::10])
    a = WorkerAPI(ds)
    a.use_model(trained_bytes)
    return a


def test_a_training_run_in_slices_ends_with_results_and_a_usable_model(bundle, trained_bytes):
    a = small_api(bundle, trained_bytes)
    settings = {"model": "mlp", "recipe": "default", "epochs": 2, "batch_size": 50,
                "lr": 0.002, "optimizer": "adam", "augment": False}
    first = a.start_training(settings)
    assert first["state"] == "running" and first["seen"] == 0 and first["total"] == 2000
    with pytest.raises(RuntimeError, match="already"):
        a.start_training(settings)
    with pytest.raises(RuntimeError, match="still going"):
        a.finish_training()
    reports = [a.train_step(0.02)]
    while reports[-1]["state"] == "running":
        reports.append(a.train_step(0.02))
    assert reports[-1]["state"] == "done" and reports[-1]["seen"] == 2000
    epochs = [e for r in reports for e in r["epochs"]]
    assert [e["epoch"] for e in epochs] == [0, 1]
    out = a.finish_training()
    res = out["results"]
    assert res["accuracy"] == epochs[-1]["val_accuracy"] > 0.5
    model = loads(out["bytes"])
    assert float((model.predict(a.data.x_test) == a.data.y_test).mean()) == res["accuracy"]
    assert all(m["pixels"].shape == (784,) and m["pixels"].dtype == np.uint8 for m in res["mistakes"])
    with pytest.raises(RuntimeError, match="no training run"):
        a.train_step()
    # The pad's model is not replaced by training.
    assert a.predict(as_bytes(bundle.x_test[0]), 28, 28, raw=True) is not None
    assert a.check_model(trained_bytes)["accuracy"] > 0.85


def test_stopping_keeps_the_partly_trained_model(bundle, trained_bytes):
    a = small_api(bundle, trained_bytes)
    a.start_training({"recipe": "default", "epochs": 5, "batch_size": 25})
    assert a.train_step(0.0)["batches"] == 1
    a.stop_training()
    assert a.train_step()["state"] == "stopped"
    out = a.finish_training()
    assert loads(out["bytes"]).predict(bundle.x_test[:3]).shape == (3,)
    assert 0 <= out["results"]["accuracy"] <= 1


def test_bad_settings_and_divergence(bundle, trained_bytes):
    a = small_api(bundle, trained_bytes)
    with pytest.raises(SettingError, match="^recipe: "):
        a.start_training({"recipe": "seed"})
    with pytest.raises(SettingError, match="^batch_size: "):
        a.start_training({"batch_size": 5000})
    a.start_training({"recipe": "tutorial", "optimizer": "sgd", "lr": 9, "epochs": 1})
    report = a.train_step(5.0)
    while report["state"] == "running":
        report = a.train_step(5.0)
    assert report["state"] == "diverged" and "learning rate" in report["message"]
    with pytest.raises(RuntimeError, match="diverged"):
        a.finish_training()


def test_enable_blas_trains_with_sgemm_when_scipy_imports(bundle, trained_bytes, monkeypatch):
    a = small_api(bundle, trained_bytes)
    has_scipy = backend.available("sgemm")
    assert a.enable_blas() is has_scipy
    seen = []
    original = backend.use

    def recording(name):
        seen.append(name)
        return original(name)

    monkeypatch.setattr(backend, "use", recording)
    a.start_training({"recipe": "tutorial", "epochs": 1})
    a.train_step(0.0)
    assert seen == (["sgemm"] if has_scipy else [])
    assert backend.current() == backend.DEFAULT
    import sys
    monkeypatch.setitem(sys.modules, "scipy.linalg.blas", None)
    assert a.enable_blas() is False and a.train_backend is None


# ---- benchmarks

def test_bench_ops(bundle):
    a = WorkerAPI(bundle)
    mm = a.bench("matmul", {"path": "numpy", "batch": 32, "repeats": 2})
    assert mm["runs"] == 2 and 0 < mm["min"] <= mm["median"] <= mm["max"]
    tr = a.bench("train", {"model": "mlp", "recipe": "tutorial", "limit": 500, "epochs": 1})
    assert tr["examples"] == 500 and tr["batch_size"] == 256 and tr["median"] > 0
    heap = iter(range(100, 200))
    mem = a.bench("train_memory", {"path": "einsum", "limit": 400, "epochs": 3},
                  heap=lambda: next(heap))
    assert mem["epochs"] == 3 and mem["examples"] == 400
    assert mem["heap_before"] == 100 and mem["heap_by_epoch"] == [101, 102, 103]
    assert len(mem["live_bytes_by_epoch"]) == 3 and min(mem["live_bytes_by_epoch"]) > 0
    assert backend.current() == backend.DEFAULT
    with pytest.raises(ValueError, match="unknown bench op"):
        a.bench("speed")
    with pytest.raises(ValueError, match="unknown backend"):
        a.bench("matmul", {"path": "gpu"})


# ---- your examples and adapting to them

def some_examples(bundle, n=12):
    """n training digits as the page keeps them: N*784 uint8 bytes (ink 255), N label bytes."""
    idx = np.arange(n) * (len(bundle.y_train) // n)   # spread over the classes
    return as_bytes(bundle.x_train[idx]), bundle.y_train[idx].astype(np.uint8).tobytes()


def test_adapt_runs_like_training_and_reports_both_accuracies(api, bundle, trained_bytes):
    source = api.model
    first = api.start_adapt(*some_examples(bundle))
    assert first["state"] == "running" and first["step"] == 0
    with pytest.raises(RuntimeError, match="already going"):
        api.start_training({"model": "mlp", "recipe": "tutorial", "epochs": 1})
    while api.train_step(0.05)["state"] == "running":
        assert api.model is source                  # the pad keeps its model meanwhile
    out = api.finish_training()
    res = out["results"]
    assert res["n_examples"] == 12 and res["n_test"] == len(bundle.y_test)
    assert res["source_accuracy"] == pytest.approx(evaluate(source, bundle.x_test, bundle.y_test))
    tuned = loads(out["bytes"])
    assert res["accuracy"] == pytest.approx(evaluate(tuned, bundle.x_test, bundle.y_test))
    assert not np.array_equal(tuned.parameters()[0].value, source.parameters()[0].value)


def test_adapt_refuses_examples_it_cannot_learn_from(api, bundle):
    pixels, _ = some_examples(bundle, n=2)
    with pytest.raises(FinetuneError, match="All examples are 5s"):
        api.start_adapt(pixels, bytes([5, 5]))
    with pytest.raises(ExamplesError):
        api.start_adapt(pixels[:-1], bytes([5, 6]))
    assert api.session is None                      # nothing was started


def test_examples_export_import_round_trip(bundle):
    pixels, labels = some_examples(bundle, n=5)
    blob = WorkerAPI.export_examples(pixels, labels)
    back = WorkerAPI.import_examples(blob)
    assert back["n"] == 5
    assert back["pixels"].tobytes() == pixels and back["labels"].tobytes() == labels
    with pytest.raises(ExamplesError):
        WorkerAPI.import_examples(b"not an npz file")
