"""Weights round-trip through safetensors and their card; tampered weights are refused."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from bbrange.shared.datasets import file_digest
from bbrange.shared.model_card import WeightsRefused, load_model, read_card
from bbrange.shared.processes import free_port
from tests.conftest import BBRANGE


def test_card_describes_the_weights(quick_model_dir):
    card = read_card(quick_model_dir / "mnist.json")
    assert card.architecture == "lenet" and card.dataset == "mnist"
    assert card.input_shape == (1, 28, 28) and card.num_classes == 10 and card.class_names[3] == "3"
    assert card.weights_sha256 == file_digest(quick_model_dir / card.weights_file)
    assert card.training.quick and card.training.epochs == 1 and card.training.train_samples == 3000
    assert 0.5 < card.test_accuracy <= 1.0 and card.test_samples == 1000
    assert card.wall_time_s > 0 and card.device == "cpu" and card.torch_version.startswith("2.13")


def test_round_trip_reproduces_predictions(quick_model_dir, mnist_test, tmp_path):
    model, card = load_model(quick_model_dir / "mnist.json", torch.device("cpu"))
    x = torch.from_numpy(mnist_test.x[:200])
    with torch.no_grad():
        labels = model(x).argmax(1).numpy()
    accuracy = float((labels == mnist_test.y[:200]).mean())
    assert accuracy > 0.6, "the quick model should have learnt something"
    copy = tmp_path / "copy"
    shutil.copytree(quick_model_dir, copy)
    again, _ = load_model(copy / "mnist.json", torch.device("cpu"))
    with torch.no_grad():
        np.testing.assert_array_equal(again(x).argmax(1).numpy(), labels)


def test_training_is_bitwise_reproducible(quick_model_dir, tmp_path, data_dir):
    from bbrange.oracle.models.training import train_oracle

    card = train_oracle("mnist", tmp_path, quick=True, data_dir=data_dir, show_progress=False)
    assert card.training.seed == 0
    assert card.weights_sha256 == read_card(quick_model_dir / "mnist.json").weights_sha256


def test_the_thesis_recipe_trains_with_plain_sgd_and_says_so(tmp_path, data_dir, mnist_test):
    from bbrange.oracle.models.training import recipe_for, train_oracle

    card = train_oracle("mnist", tmp_path, name="mnist-thesis", recipe="mnist-thesis", quick=True,
                        data_dir=data_dir, show_progress=False)
    assert (card.training.recipe, card.training.optimizer, card.training.batch_size) == ("mnist-thesis", "sgd", 500)
    assert card.training.learning_rate == 0.1 and card.test_accuracy > 0.2  # six SGD steps; chance is 0.1
    model, _ = load_model(tmp_path / "mnist-thesis.json", torch.device("cpu"))
    assert model(torch.from_numpy(mnist_test.x[:4])).shape == (4, 10)
    with pytest.raises(ValueError, match="no training recipe 'gtsrb' for mnist"):
        recipe_for("mnist", "gtsrb")


@pytest.fixture
def tampered_dir(quick_model_dir, tmp_path):
    target = tmp_path / "tampered"
    shutil.copytree(quick_model_dir, target)
    weights = target / "mnist.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(raw))
    return target


def test_tampered_weights_are_refused(tampered_dir):
    with pytest.raises(WeightsRefused, match="does not match its card"):
        load_model(tampered_dir / "mnist.json", torch.device("cpu"))


def test_server_refuses_to_start_on_tampered_weights(tampered_dir, redis_server):
    result = subprocess.run(
        [str(BBRANGE), "oracle", "serve", "--port", str(free_port()), "--model-dir", str(tampered_dir),
         "--redis-url", redis_server.url, "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "does not match its card" in result.stdout + result.stderr


def copy_with_card_edit(quick_model_dir, target, **changes):
    """A copy of the quick model directory whose card has these fields changed."""
    shutil.copytree(quick_model_dir, target)
    card = json.loads((target / "mnist.json").read_text())
    (target / "mnist.json").write_text(json.dumps(card | changes))
    return target


def test_weights_of_an_earlier_architecture_definition_are_refused(quick_model_dir, tmp_path):
    """Same parameter shapes, other activations: the weights would load silently and answer nonsense."""
    target = copy_with_card_edit(quick_model_dir, tmp_path / "outdated", architecture_layers=(
        "conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, fc 500, fc classes; ReLU"))
    with pytest.raises(WeightsRefused, match="train it again"):
        load_model(target / "mnist.json", torch.device("cpu"))


def test_card_cannot_point_outside_its_directory(quick_model_dir, tmp_path):
    target = copy_with_card_edit(quick_model_dir, tmp_path / "escape", weights_file="../copy/mnist.safetensors")
    with pytest.raises(WeightsRefused, match="plain file name"):
        load_model(target / "mnist.json", torch.device("cpu"))


def _train_if_missing(model_dir, data_dir) -> tuple[int, str]:
    """Exit code and output, with the console's line wrapping undone."""
    done = subprocess.run(
        [str(BBRANGE), "oracle", "train", "--dataset", "mnist", "--quick", "--if-missing", "--device", "cpu",
         "--model-dir", str(model_dir), "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def test_train_if_missing_keeps_a_servable_model_and_replaces_an_unusable_one(quick_model_dir, tmp_path, data_dir):
    servable = tmp_path / "servable"
    shutil.copytree(quick_model_dir, servable)
    before = (servable / "mnist.safetensors").read_bytes()
    code, output = _train_if_missing(servable, data_dir)
    assert code == 0 and "servable: not training" in output, output
    assert (servable / "mnist.safetensors").read_bytes() == before

    target = copy_with_card_edit(quick_model_dir, tmp_path / "outdated", architecture_layers="an earlier definition")
    code, output = _train_if_missing(target, data_dir)
    assert code == 0 and "train it again" in output and "test accuracy" in output, output
    model, card = load_model(target / "mnist.json", torch.device("cpu"))  # servable again
    assert card.architecture_layers != "an earlier definition"
