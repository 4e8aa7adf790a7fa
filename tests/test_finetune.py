"""Fine-tuning on a person's examples: refusals, slicing, seeding, and that it learns a
style the model misreads without forgetting the test split; the CLI's ``finetune``."""
import numpy as np
import pytest

from cli_runner import run_cli, run_process
from digitnet import data, dumps, load, save
from digitnet.examples import ExamplesError, load_examples, save_examples
from digitnet.finetune import Finetune, FinetuneError, finetune
from digitnet.recipes import get_recipe
from digitnet.train import evaluate, fit_recipe
from handwriting import STYLES, jitter, render


@pytest.fixture(scope="module")
def ds():
    return data.load_bundle()


@pytest.fixture(scope="module")
def base(ds):
    """Like the shipped MLP (its recipe, fewer epochs to keep the test quick)."""
    model, _ = fit_recipe(get_recipe("mlp", "default").with_overrides(epochs=10), ds)
    return model


def style_set(n, seed):
    """n jittered drawings of every style: uint8 (3n, 28, 28), labels, style names."""
    rng = np.random.default_rng(seed)
    images, labels, names = [], [], []
    for name, (label, strokes) in STYLES.items():
        for _ in range(n):
            images.append(render(jitter(strokes(), rng)))
            labels.append(label)
            names.append(name)
    return np.stack(images), np.array(labels, np.uint8), np.array(names)


def right_per_style(model, images, labels, names):
    preds = model.predict(images.reshape(len(images), 784).astype(np.float32) / 255)
    return {name: int((preds[names == name] == labels[names == name]).sum()) for name in STYLES}


def examples(ds, n=12, seed=0):
    idx = np.random.default_rng(seed).choice(len(ds.y_test), n, replace=False)
    return (ds.x_test[idx] * 255).round().astype(np.uint8), ds.y_test[idx]


def test_refuses_no_examples_and_a_single_digit(base, ds):
    with pytest.raises(FinetuneError, match="no examples"):
        Finetune(base, np.zeros((0, 28, 28), np.uint8), np.zeros(0), ds.x_train, ds.y_train)
    with pytest.raises(FinetuneError, match="All examples are 7s"):
        Finetune(base, np.zeros((3, 28, 28), np.uint8), [7, 7, 7], ds.x_train, ds.y_train)
    with pytest.raises(ExamplesError, match="28x28"):
        Finetune(base, np.zeros((2, 20, 20), np.uint8), [1, 2], ds.x_train, ds.y_train)
    with pytest.raises(ExamplesError, match="from 0 to 9"):
        Finetune(base, np.zeros((2, 28, 28), np.uint8), [1, 12], ds.x_train, ds.y_train)


def test_it_learns_styles_the_model_misreads(base, ds):
    """3 corrected drawings per style -> fresh drawings of those styles read right."""
    train_images, train_labels, _ = style_set(3, seed=1)
    test_images, test_labels, test_names = style_set(10, seed=2)
    before = right_per_style(base, test_images, test_labels, test_names)
    assert all(n <= 5 for n in before.values()), f"the base model already reads these: {before}"
    acc_before = evaluate(base, ds.x_test, ds.y_test)
    tuned = finetune(base, train_images, train_labels, ds.x_train, ds.y_train, seed=0)
    after = right_per_style(tuned, test_images, test_labels, test_names)
    assert all(n >= 9 for n in after.values()), f"before {before}, after {after}"
    acc_after = evaluate(tuned, ds.x_test, ds.y_test)
    # It must not forget MNIST (a drop of at most half a point; the quick base model here
    # is under-trained, so tuning may also raise its accuracy).
    assert acc_after >= acc_before - 0.005, (acc_before, acc_after)
    # The source model is a copy: untouched.
    assert right_per_style(base, test_images, test_labels, test_names) == before


def test_seeded_and_sliced(base, ds):
    images, labels = examples(ds)
    a = Finetune(base, images, labels, ds.x_train, ds.y_train, steps=6, seed=3)
    reports = []
    while a.state == "running":
        reports.append(a.step(budget_s=0))        # a zero budget still runs one step
    assert [r["step"] for r in reports] == [1, 2, 3, 4, 5, 6]
    assert reports[-1]["state"] == "done" and reports[-1]["progress"] == 1.0
    b = finetune(base, images, labels, ds.x_train, ds.y_train, steps=6, seed=3)
    c = finetune(base, images, labels, ds.x_train, ds.y_train, steps=6, seed=4)
    assert dumps(a.model) == dumps(b)
    assert dumps(a.model) != dumps(c)


def test_stop_flag(base, ds):
    images, labels = examples(ds)
    calls = []
    run = Finetune(base, images, labels, ds.x_train, ds.y_train, steps=1000)
    run.run(on_progress=calls.append, should_stop=lambda: len(calls) >= 2, budget_s=0)
    assert run.state == "stopped" and run.done_steps == 2
    assert run.step()["step"] == 2                # a stopped run does not move on


def test_cli_finetune(base, ds, tmp_path):
    save(base, tmp_path / "m.npz")
    images, labels, _ = style_set(3, seed=1)
    (tmp_path / "ex.npz").write_bytes(save_examples(images, labels))
    proc = run_process("finetune", "--weights", tmp_path / "m.npz", "--examples",
                       tmp_path / "ex.npz", "--out", tmp_path / "m2.npz", "--steps", 20)
    assert proc.code == 0, proc.err
    assert "(20 steps in" in proc.out
    before = float(proc.out.split("test accuracy before:")[1].split()[0])
    after = float(proc.out.split("test accuracy after:")[1].split()[0])
    assert before == pytest.approx(evaluate(base, ds.x_test, ds.y_test), abs=1e-4)
    tuned = load(tmp_path / "m2.npz")
    assert after == pytest.approx(evaluate(tuned, ds.x_test, ds.y_test), abs=1e-4)
    # The same seeded run in this process (BLAS threading may change the last float bits).
    here = finetune(base, images, labels, ds.x_train, ds.y_train, steps=20)
    for p, q in zip(tuned.parameters(), here.parameters()):
        np.testing.assert_allclose(p.value, q.value, atol=1e-4)


def test_cli_finetune_png_directory(base, tmp_path):
    from PIL import Image

    save(base, tmp_path / "m.npz")
    images, labels, _ = style_set(1, seed=5)
    (tmp_path / "pngs").mkdir()
    for i, (img, lab) in enumerate(zip(images, labels)):
        Image.fromarray(img).save(tmp_path / "pngs" / f"{lab}_{i}.png")
    proc = run_cli("finetune", "--weights", tmp_path / "m.npz", "--examples", tmp_path / "pngs",
                   "--out", tmp_path / "m2.npz", "--steps", 2)
    assert proc.code == 0, proc.err
    assert load_examples(tmp_path / "pngs")[1].tolist() == sorted(labels.tolist())
    assert (tmp_path / "m2.npz").exists()


def test_cli_finetune_errors(base, tmp_path):
    save(base, tmp_path / "m.npz")
    proc = run_cli("finetune", "--weights", tmp_path / "m.npz")
    assert proc.code == 2 and "--examples" in proc.err
    proc = run_cli("finetune", "--weights", tmp_path / "m.npz", "--examples", tmp_path / "ex.npz",
                   "--out", tmp_path / "out.npz", "--steps", 0)
    assert proc.code == 2 and "must be a whole number from 1 to 10000" in proc.err
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    (tmp_path / "one.npz").write_bytes(save_examples(np.zeros((2, 28, 28), np.uint8), [3, 3]))
    for examples_file, message in [("bad.npz", "not a readable examples file"),
                                   ("one.npz", "All examples are 3s"),
                                   ("missing.npz", "Cannot read")]:
        proc = run_cli("finetune", "--weights", tmp_path / "m.npz", "--examples",
                       tmp_path / examples_file, "--out", tmp_path / "out.npz")
        assert proc.code == 1, proc.err
        lines = proc.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("digitnet: error: ") and message in lines[0]
        assert not (tmp_path / "out.npz").exists()
