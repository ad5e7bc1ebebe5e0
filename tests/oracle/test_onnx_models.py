"""Models the project did not train: ONNX files imported (CLI and admin API), served through ONNX Runtime with
the same budgets and metrics, refused clearly when they do not match their declaration; our own models
exported as ONNX."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from bbrange.shared.model_card import read_card
from bbrange.shared.wire import NPY_MEDIA_TYPE, decode_npy, encode_npy
from tests.conftest import BBRANGE, ForeignModel, OracleProcess
from tests.foreign_model import export, reference_labels
from tests.oracle.test_budgets import metric_value


def predict(oracle: OracleProcess, key: str, model: str, x: np.ndarray) -> httpx.Response:
    return httpx.post(f"{oracle.url}/v1/models/{model}/predict", content=encode_npy(x), timeout=60,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": NPY_MEDIA_TYPE, "Accept": NPY_MEDIA_TYPE})


def bbrange(*args: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([str(BBRANGE), "oracle", *args], capture_output=True, text=True, timeout=300)
    run.stdout = " ".join(run.stdout.split())  # however the terminal width wrapped it
    return run


def test_the_import_writes_a_card_like_a_trained_one(onnx_model_dir: Path, foreign_model: ForeignModel, mnist_test):
    card = read_card(onnx_model_dir / "foreign.json")
    assert (card.format, card.architecture, card.dataset) == ("onnx", "onnx", "mnist")
    assert card.weights_file == "foreign.onnx" and card.imported_from == "foreign.onnx"
    assert card.weights_sha256 == hashlib.sha256(foreign_model.onnx_file.read_bytes()).hexdigest()
    assert card.input_shape == (1, 28, 28) and card.num_classes == 10 and card.class_names[:2] == ["0", "1"]
    assert card.onnx is not None and (card.onnx.input_name, card.onnx.output_name) == ("pixels", "logits")
    assert card.preprocessing.value_range == (0.0, 255.0) and card.preprocessing.mean == (33.3,)
    # Accuracy measured on the whole MNIST test set, through ONNX Runtime: the torch module's own, give or take
    # an input whose float rounding differs.
    expected = float((reference_labels(foreign_model.module, mnist_test.x) == mnist_test.y).mean())
    assert card.test_samples == 10_000 and card.test_accuracy == pytest.approx(expected, abs=2e-4)
    assert card.test_accuracy > 0.8


def test_an_imported_model_is_served_metered_and_labels_as_its_torch_module(
        onnx_oracle: OracleProcess, foreign_model: ForeignModel, mnist_test):
    listed = httpx.get(f"{onnx_oracle.url}/v1/models").json()["models"]
    assert {m["name"] for m in listed} == {"mnist", "foreign"}
    client_id, key = onnx_oracle.create_client(300, "onnx-v1")
    x = mnist_test.x[:200]
    r = predict(onnx_oracle, key, "foreign", x)
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(decode_npy(r.content), reference_labels(foreign_model.module, x))
    assert r.headers["X-Budget-Remaining"] == "100"
    # uint8 images are the same images
    r = predict(onnx_oracle, key, "foreign", np.round(x[:50] * 255).astype(np.uint8))
    assert r.status_code == 200
    assert predict(onnx_oracle, key, "foreign", x[:51]).status_code == 429  # 50 left: refused whole
    assert onnx_oracle.usage(client_id)["used"] == 250
    assert metric_value(onnx_oracle.url, "bbrange_oracle_inputs_answered_total", client=client_id,
                        model="foreign") == 250
    assert metric_value(onnx_oracle.url, "bbrange_oracle_refusals_total", reason="budget_exhausted",
                        model="foreign") >= 1


def test_mismatched_and_malformed_imports_are_refused_saying_what_differs(
        tmp_path: Path, foreign_model: ForeignModel):
    out = bbrange("import", str(foreign_model.onnx_file), "--name", "wrong", "--dataset", "custom",
                  "--input-shape", "3,32,32", "--model-dir", str(tmp_path))
    assert out.returncode == 1
    assert "channels 3 ≠ 1" in out.stdout and "height 32 ≠ 28" in out.stdout and "pixels" in out.stdout
    out = bbrange("import", str(foreign_model.onnx_file), "--name", "wrong", "--dataset", "custom",
                  "--input-shape", "1,28,28", "--class-names", "a,b,c", "--model-dir", str(tmp_path))
    assert out.returncode == 1 and "3 classes are declared" in out.stdout and "10" in out.stdout
    out = bbrange("import", str(foreign_model.onnx_file), "--name", "wrong", "--dataset", "mnist",
                  "--layout", "nhwc", "--model-dir", str(tmp_path))
    assert out.returncode == 1 and "NHWC" in out.stdout
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"\x80\x04\x95 this is a pickle, not an ONNX model" * 10)
    out = bbrange("import", str(not_onnx), "--dataset", "mnist", "--model-dir", str(tmp_path))
    assert out.returncode == 1 and "not an ONNX model" in out.stdout
    assert not list(tmp_path.glob("*.json")), "nothing is written for a refused import"


def test_a_model_with_a_fixed_batch_of_one_is_served_in_chunks(tmp_path: Path, foreign_model: ForeignModel,
                                                                mnist_test):
    from bbrange.oracle.models.onnx_import import ImportSpec, import_onnx
    from bbrange.oracle.serving.backend_onnx import OnnxBackend
    from bbrange.shared.model_card import Preprocessing

    fixed = export(foreign_model.module, tmp_path / "fixed.onnx", dynamic=False)
    spec = ImportSpec(name="fixed", dataset="custom", input_shape=(1, 28, 28),
                      preprocessing=Preprocessing(value_range=(0, 255), mean=(33.3,), std=(78.6,)))
    card = import_onnx(fixed.read_bytes(), spec, tmp_path / "models")
    assert card.onnx is not None and card.onnx.fixed_batch == 1 and card.test_accuracy is None
    backend, _ = OnnxBackend.open(tmp_path / "models" / "fixed.json", __import__("torch").device("cpu"))
    np.testing.assert_array_equal(backend.labels(mnist_test.x[:7]), reference_labels(foreign_model.module,
                                                                                     mnist_test.x[:7]))


def test_import_through_the_admin_api_serves_at_once(onnx_oracle: OracleProcess, foreign_model: ForeignModel,
                                                     mnist_test):
    data = foreign_model.onnx_file.read_bytes()
    params = {"name": "foreign-api", "dataset": "mnist", "value_range": "0,255", "mean": "33.3", "std": "78.6"}
    with onnx_oracle.admin() as admin:
        r = admin.post("/v1/admin/models", params=params, content=data, timeout=120,
                       headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        assert r.json()["model"]["format"] == "onnx" and r.json()["model"]["test_accuracy"] > 0.8
        again = admin.post("/v1/admin/models", params=params, content=data)
        assert again.status_code == 409 and again.json()["error"]["code"] == "model_exists"
        bad = admin.post("/v1/admin/models", params={**params, "name": "junk"}, content=b"not onnx at all" * 50)
        assert bad.status_code == 422 and "not an ONNX model" in bad.json()["error"]["message"]
        shape = admin.post("/v1/admin/models", content=data, params={
            "name": "wrong-shape", "dataset": "custom", "input_shape": "1,32,32"})
        assert shape.status_code == 422 and "height 32 ≠ 28" in shape.json()["error"]["message"]
        big = admin.post("/v1/admin/models", params={**params, "name": "big"}, content=b"\0" * (5 * 1024 * 1024))
        assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"  # the fixture's 4 MiB cap
    unauthorized = httpx.post(f"{onnx_oracle.url}/v1/admin/models", params=params, content=data)
    assert unauthorized.status_code in (401, 403)
    _, key = onnx_oracle.create_client(20, "api-import")
    r = predict(onnx_oracle, key, "foreign-api", mnist_test.x[:20])
    assert r.status_code == 200
    np.testing.assert_array_equal(decode_npy(r.content), reference_labels(foreign_model.module, mnist_test.x[:20]))


def test_our_trained_model_exports_as_onnx_and_imports_back(quick_model_dir: Path, tmp_path: Path, mnist_test):
    import torch

    from bbrange.oracle.serving.backend_onnx import OnnxBackend
    from bbrange.shared.model_card import load_model

    out = bbrange("export", "mnist", "--model-dir", str(quick_model_dir), "--output", str(tmp_path / "mnist.onnx"))
    assert out.returncode == 0, out.stdout + out.stderr
    out = bbrange("import", str(tmp_path / "mnist.onnx"), "--name", "mnist-onnx", "--dataset", "mnist",
                  "--model-dir", str(tmp_path / "models"))
    assert out.returncode == 0, out.stdout + out.stderr
    backend, card = OnnxBackend.open(tmp_path / "models" / "mnist-onnx.json", torch.device("cpu"))
    model, _ = load_model(quick_model_dir / "mnist.json", torch.device("cpu"))
    with torch.inference_mode():
        expected = model(torch.from_numpy(mnist_test.x[:500])).argmax(1).numpy()
    assert int((backend.labels(mnist_test.x[:500]) != expected).sum()) <= 1
    assert card.test_accuracy is not None and card.test_accuracy > 0.5
