"""LeNet-5 (``fastcnn.models.lenet``): its layers, the compiled loops against the reference path on
real MNIST (2 epochs x 300 images, per sample and B = 32, every loss and parameter within 1e-9 in
float64), one SGD step against PyTorch's autograd, model files and ``fastcnn train --model lenet``."""

import numpy as np
import pytest

import fastcnn
from fastcnn import (
    Activation,
    Convolution,
    Linear,
    MaxPool,
    Reshape,
    Softmax,
    _compiled,
    cross_entropy,
    d_cross_entropy,
)
from fastcnn.models import MODELS, RECIPES, lenet

from .support import AUTOGRAD, TRAJECTORY_F64, parameters


def test_lenet_is_lenet():
    net = lenet(rng=0)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == [
        "Convolution", "Activation", "MaxPool", "Convolution", "Activation", "MaxPool", "Reshape",
        "Linear", "Activation", "Linear", "Activation", "Linear", "Softmax",
    ]  # fmt: skip
    convs = [layer for layer in net.layers if isinstance(layer, Convolution)]
    assert [(c.filter_count, c.filter_size, c.padding, c.bias) for c in convs] == [
        (6, 5, 2, "filter"),
        (16, 5, 0, "filter"),
    ]
    assert [c.biases.shape for c in convs] == [(6, 1, 1), (16, 1, 1)]
    assert [(d.input_size, d.output_size) for d in net.layers if isinstance(d, Linear)] == [
        (400, 120),
        (120, 84),
        (84, 10),
    ]
    assert all(a.activation is fastcnn.relu for a in net.layers if isinstance(a, Activation))
    assert sum(p.size for p in parameters(net).values()) == 61_706  # LeNet-5's count, as torch's
    assert net.input_shape == (1, 28, 28) and net.output_shape == (10, 1)
    assert MODELS["lenet"] is lenet and RECIPES["lenet"].loss is cross_entropy
    for dtype in (np.float64, np.float32):
        program = _compiled.program(
            lenet(rng=0, dtype=dtype).layers, cross_entropy, d_cross_entropy
        )
        assert program is not None  # every layer on the compiled loops


def test_lenet_draws_from_its_rng():
    a, b, c = lenet(rng=1), lenet(rng=1), lenet(rng=2)
    pa, pb, pc = parameters(a), parameters(b), parameters(c)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert not np.array_equal(pa["layer 0 Convolution.filters"], pc["layer 0 Convolution.filters"])
    # He (Kaiming-normal, fan in) by default: conv1's fan in is 25, so its std is sqrt(2/25).
    assert np.std(lenet(rng=3).layers[0].filters) == pytest.approx(np.sqrt(2 / 25), rel=0.3)


@pytest.mark.mnist
@pytest.mark.parametrize("batch_size", [1, 32])
def test_lenet_compiled_matches_reference_on_mnist(mnist_sample, batch_size):
    # The trajectory test: 2 epochs x 300 real MNIST images from the same weights, the
    # compiled loop (fused softmax + cross-entropy, padded 5x5 convolutions, pooling) against every
    # layer's scipy path called from Python.
    x, y = mnist_sample
    fast, ref = lenet(rng=0), lenet(rng=0, backend="scipy")
    args = (cross_entropy, d_cross_entropy, 2, 0.01)
    ha = fast.train(x, y, *args, verbose=False, batch_size=batch_size)
    hb = ref.train(x, y, *args, verbose=False, batch_size=batch_size)
    tol = TRAJECTORY_F64["norm_rtol"]
    np.testing.assert_allclose(ha, hb, rtol=tol, err_msg="epoch losses")
    pa, pb = parameters(fast), parameters(ref)
    for name in pa:
        np.testing.assert_allclose(pa[name], pb[name], rtol=tol, atol=tol, err_msg=name)
    assert ha[1] < ha[0]  # it learns


def test_lenet_step_matches_torch_autograd():
    # One SGD step on a batch of 4 from the same weights: every parameter after it equals
    # PyTorch's (CrossEntropyLoss on the logits, mean over the batch), float64.
    torch = pytest.importorskip("torch")
    from bench.lenet import torch_model

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 1, 28, 28))
    labels = rng.integers(0, 10, 4)
    y = np.eye(10)[labels].reshape(4, 10, 1)
    net = lenet(rng=0)
    model = torch_model(net, np.float64)
    net.train(x, y, cross_entropy, d_cross_entropy, 1, 0.1, verbose=False, batch_size=4)
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(labels))
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    ours = [layer for layer in net.layers if layer.parameters()]
    theirs = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for layer, module in zip(ours, theirs, strict=True):
        weights, biases = layer.parameters()
        np.testing.assert_allclose(weights, module.weight.detach().numpy(), **AUTOGRAD)
        np.testing.assert_allclose(biases.reshape(-1), module.bias.detach().numpy(), **AUTOGRAD)


def test_lenet_model_file_round_trip(tmp_path):
    net = lenet(rng=4, dtype=np.float32)
    net.save(tmp_path / "lenet.npz")
    loaded = fastcnn.load(tmp_path / "lenet.npz")
    assert repr(loaded) == repr(net)
    x = np.random.default_rng(0).uniform(0, 1, (3, 1, 28, 28)).astype(np.float32)
    assert np.array_equal(loaded.predict_batch(x), net.predict_batch(x))


def test_lenet_layers_are_importable_from_fastcnn():
    assert (fastcnn.Softmax, fastcnn.MaxPool, fastcnn.Reshape) == (Softmax, MaxPool, Reshape)


# --------------------------------------------------------------------------------------------------
# the command line


@pytest.mark.mnist
@pytest.mark.slow  # trains on real MNIST: compiles LeNet's loop
def test_train_model_lenet_learns(tmp_path, mnist_dir, capsys):
    # The recipe fills every option not given (cross-entropy, shuffled, He weights); one epoch on
    # 2,000 images already classifies most of the first 1,000 test images. Catches a recipe that
    # is not applied (MSE on a softmax learns far slower), labels misaligned, a wrong loss.
    from fastcnn import cli

    out = tmp_path / "lenet.npz"
    argv = ["train", "--model", "lenet", "--data", str(mnist_dir), "--out", str(out)]
    argv += ["--limit", "2000", "--epochs", "1", "--test-limit", "1000"]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "Training LeNet-5 on 2000 mnist images (1 epoch, cross-entropy" in stdout
    batch = RECIPES["lenet"].batch_size
    assert f"batch size {batch}, shuffled, init he, seed 0, numba, float32)" in stdout
    assert "trained 1 epochs in" in stdout
    accuracy = float(stdout.split("test accuracy: ")[-1].split()[0])
    assert accuracy > 0.85, stdout
    loaded = fastcnn.load(out)
    assert isinstance(loaded.layers[-1], Softmax)
    # Network.train itself recorded the recipe's optimizer and schedule in the checkpoint
    import json

    with np.load(out, allow_pickle=False) as f:
        doc = json.loads(f["training.json"].tobytes())
    recipe = RECIPES["lenet"]
    assert doc["optimizer"]["class_name"] == "SGD"
    assert doc["optimizer"]["config"]["momentum"] == recipe.momentum
    assert doc["optimizer"]["config"]["nesterov"] == recipe.nesterov
    assert doc["schedule"]["class_name"] == "OneCycleLR"
    assert cli.main(["evaluate", str(out), "--data", str(mnist_dir), "--limit", "1000"]) == 0
    assert f"{accuracy:.4f}" in capsys.readouterr().out


def test_train_options_override_the_recipe(monkeypatch, tmp_path):
    from fastcnn import cli

    monkeypatch.chdir(tmp_path)  # the default --out's lock file

    seen = {}
    monkeypatch.setattr(cli, "_train_into", lambda args, out: seen.update(vars(args)) or 0)
    assert (
        cli.main(["train", "--model", "lenet", "--loss", "mse", "--no-shuffle", "--rate", "0.5"])
        == 0
    )
    assert (seen["loss"], seen["shuffle"], seen["rate"], seen["init"]) == ("mse", False, 0.5, "he")
    assert seen["epochs"] == RECIPES["lenet"].epochs
    assert cli.main(["train"]) == 0  # the notebook's recipe, as before
    assert (seen["loss"], seen["epochs"], seen["rate"], seen["batch_size"]) == ("mse", 5, 0.1, 1)
    assert (seen["shuffle"], seen["init"], seen["dtype"]) == (False, "notebook", "float64")


class _Stopped(Exception):
    """Raised by the stand-in for Network.train once it has recorded its call."""


def _train_call(monkeypatch, tmp_path, *options):
    """The arguments ``fastcnn train OPTIONS`` hands to Network.train, on 40 synthetic images."""
    from fastcnn import cli
    from fastcnn.network import Network

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = np.arange(50) % 10
    data = (images[:40], labels[:40]), (images[40:], labels[40:])
    monkeypatch.setattr(cli, "_load_data", lambda args: data)
    seen = {}

    def train(self, x, y, loss, d_loss, epochs, rate, **kwargs):
        seen.update(kwargs, epochs=epochs, rate=rate, samples=len(x))
        raise _Stopped

    monkeypatch.setattr(Network, "train", train)
    with pytest.raises(_Stopped):
        cli.main(["train", "--quiet", "--out", str(tmp_path / "m.npz"), *options])
    return seen


def test_the_lenet_recipes_optimizer_and_schedule_reach_network_train(monkeypatch, tmp_path):
    # Catches a recipe whose optimizer or schedule the command line drops (fastcnn train --model
    # lenet would then run plain SGD at a constant rate, the fused path, with no error).
    from fastcnn import optim

    recipe = RECIPES["lenet"]
    assert recipe.optimizer != "sgd" or recipe.schedule is not None  # else this test proves little
    seen = _train_call(monkeypatch, tmp_path, "--model", "lenet")
    steps = -(-seen["samples"] // recipe.batch_size)
    assert recipe.optimizer == "momentum"  # the chosen default; the expected objects below
    assert seen["optimizer"] == optim.SGD(
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay or 0.0,
    )
    assert seen["rate"] == recipe.rate  # SGD has no lr of its own: train's rate is its rate
    assert seen["schedule"] == optim.OneCycleLR(
        recipe.rate, epochs=recipe.epochs, steps_per_epoch=steps
    )
    assert (seen["epochs"], seen["batch_size"], seen["shuffle"]) == (
        recipe.epochs,
        recipe.batch_size,
        recipe.shuffle,
    )


def test_options_given_override_the_recipes_optimizer(monkeypatch, tmp_path):
    from fastcnn import optim

    recipe = RECIPES["lenet"]
    # --optimizer sgd is plain SGD: none of the recipe's momentum, decay or schedule.
    seen = _train_call(monkeypatch, tmp_path, "--model", "lenet", "--optimizer", "sgd")
    assert (seen["optimizer"], seen["schedule"], seen["rate"]) == (None, None, recipe.rate)
    # one knob given keeps the rest of the recipe
    seen = _train_call(monkeypatch, tmp_path, "--model", "lenet", "--schedule", "none")
    assert seen["schedule"] is None and seen["optimizer"].momentum == recipe.momentum
    seen = _train_call(monkeypatch, tmp_path, "--model", "lenet", "--no-nesterov")
    assert seen["optimizer"].nesterov is False and seen["schedule"] is not None
    seen = _train_call(monkeypatch, tmp_path, "--model", "lenet", "--momentum", "0.5")
    assert seen["optimizer"].momentum == 0.5
    seen = _train_call(monkeypatch, tmp_path, "--model", "lenet", "--weight-decay", "0")
    assert seen["optimizer"].weight_decay == 0.0
    seen = _train_call(monkeypatch, tmp_path, "--model", "lenet", "--schedule", "cosine")
    assert seen["schedule"] == optim.CosineAnnealingLR(recipe.epochs)
    # an explicit Adam without --rate takes Adam's 1e-3, not the recipe's SGD rate
    seen = _train_call(monkeypatch, tmp_path, "--model", "lenet", "--optimizer", "adam")
    assert seen["optimizer"] == optim.Adam(lr=1e-3) and seen["schedule"] is None
    # the notebook's recipe is the seed's plain SGD: the fused path, no optimizer object
    seen = _train_call(monkeypatch, tmp_path)
    assert (seen["optimizer"], seen["schedule"], seen["rate"], seen["epochs"]) == (
        None,
        None,
        0.1,
        5,
    )


def test_a_recipe_refuses_an_unknown_optimizer_or_schedule():
    from fastcnn.models import Recipe

    with pytest.raises(ValueError, match="optimizer must be one of"):
        Recipe(cross_entropy, d_cross_entropy, epochs=1, rate=0.1, optimizer="nadam")
    with pytest.raises(ValueError, match="schedule must be one of"):
        Recipe(cross_entropy, d_cross_entropy, epochs=1, rate=0.1, schedule="linear")
    with pytest.raises(ValueError, match="nesterov needs"):
        Recipe(cross_entropy, d_cross_entropy, epochs=1, rate=0.1, nesterov=True)
