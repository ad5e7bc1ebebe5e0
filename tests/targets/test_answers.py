"""How the adapters read what an endpoint says, in-process: labels in every nesting and type, error bodies in
the common shapes (quoted, bounded), and serving systems' words for a batch that is too large."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from bbrange.attacker.campaigns.errors import OracleProtocolError
from bbrange.attacker.campaigns.targets.labels import read_labels
from bbrange.attacker.campaigns.targets.refusals import ERROR_QUOTE_CHARS, quoted_error, says_too_large


@pytest.mark.parametrize("values", [
    [7, 2, 1],                     # plain
    [[7], [2], [1]],               # TF Serving, an output of shape [None, 1]
    [7.0, 2.0, 1.0],               # a V2 output typed FP32
    np.array([[7.0], [2.0], [1.0]], dtype=np.float32),
    ["7", "2", "1"],               # class ids as text
    [["7"], [" 2"], ["1"]],
    np.array([7, 2, 1], dtype=np.uint8),
])
def test_labels_are_one_whole_number_per_input_whatever_the_nesting_or_type(values: object) -> None:
    labels = read_labels(values, 3, 10)
    assert labels.dtype == np.int64 and labels.tolist() == [7, 2, 1]


def test_scores_of_num_classes_values_are_reduced_by_argmax() -> None:
    scores = np.eye(10)[[7, 2, 1]] * 0.8 + 0.01
    assert read_labels(scores.tolist(), 3, 10).tolist() == [7, 2, 1]
    assert read_labels(scores.reshape(3, 1, 10), 3, 10, "scores").tolist() == [7, 2, 1]


@pytest.mark.parametrize(("values", "n", "expected", "says"), [
    ([[0.31], [0.92], [0.5]], 3, "either", "not a whole number"),       # (N, 1) floats: a score? a label?
    ([0.2, 7.0, 1.0], 3, "either", "not a whole number"),
    ([7, 2], 3, "either", "2 entries for 3 inputs"),                     # a count mismatch
    ([[7, 2, 1]], 3, "either", "1 entries for 3 inputs"),
    ([[1, 2, 3, 4, 5]] * 3, 3, "either", "5 values per input"),          # top-5 ids, or 5 scores of 10 classes?
    ([[7], [2], [1]], 3, "scores", "1 values per input where one score vector of 10 values"),
    (np.eye(10)[:3].tolist(), 3, "labels", "10 values per input where one class id"),
    (["seven", "two", "one"], 3, "either", "text that is not class ids"),
    ([True, False, True], 3, "either", "neither numbers"),
    ([[7], [2, 3], [1]], 3, "either", "not one entry per input of one shape"),
    (7, 3, "either", "a single value for 3 inputs"),
])
def test_an_answer_that_could_be_either_fails_with_what_was_received(values: object, n: int, expected: str,
                                                                      says: str) -> None:
    with pytest.raises(OracleProtocolError, match="cannot be read as labels|not one entry per input") as e:
        read_labels(values, n, 10, expected)  # type: ignore[arg-type]
    message = str(e.value)
    assert says in message, message
    assert len(message) < 400


def test_what_was_received_is_quoted_bounded() -> None:
    with pytest.raises(OracleProtocolError) as e:
        read_labels(np.full((1000, 1), 0.5), 1000, 10)
    message = str(e.value)
    assert "shape [1000, 1] of float64, first values [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, …]" in message
    with pytest.raises(OracleProtocolError) as e:
        read_labels(["x" * 10_000] * 3, 3, 10)
    assert len(str(e.value)) < 400


def answer(status: int, body: object = None, text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text)
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(("body", "quoted"), [
    ({"type": "about:blank", "title": "Unprocessable input", "status": 422,
      "detail": "expected NCHW [N, 1, 28, 28], got [N, 28, 28, 1]"},
     "HTTP 422: Unprocessable input: expected NCHW [N, 1, 28, 28], got [N, 28, 28, 1]"),
    ({"detail": "Model is not loaded"}, "HTTP 422: Model is not loaded"),
    ({"detail": [{"loc": ["body", "images"], "msg": "field required", "type": "missing"}]},
     "HTTP 422: body.images: field required"),
    ({"message": "input must be 224x224"}, "HTTP 422: input must be 224x224"),
    ({"errors": [{"message": "bad dtype"}, {"message": "bad shape"}]}, "HTTP 422: bad dtype; bad shape"),
    ({"error": "unexpected shape for input 'x'"}, "HTTP 422: unexpected shape for input 'x'"),
])
def test_the_common_error_shapes_are_quoted(body: object, quoted: str) -> None:
    assert quoted_error(answer(422, body))[1] == quoted


def test_quotes_are_bounded_and_on_one_line() -> None:
    code, message, _ = quoted_error(answer(422, {"title": "Bad", "detail": "line\nbreak " + "x" * 5000}))
    assert "\n" not in message and len(message) <= len("HTTP 422: ") + ERROR_QUOTE_CHARS
    code, message, _ = quoted_error(answer(400, {"error": {"code": "c" * 500, "message": "m" * 5000}}))
    assert len(code) <= 64 and len(message) <= ERROR_QUOTE_CHARS


@pytest.mark.parametrize("reply", [
    answer(400, text="<html><body>upstream password hunter2</body></html>"),
    answer(400, {"status": "failed", "secret": "hunter2"}),
    answer(400, ["hunter2"]),
])
def test_what_is_not_a_json_error_is_not_quoted(reply: httpx.Response) -> None:
    message = quoted_error(reply)[1]
    assert "hunter2" not in message and message.startswith("HTTP 400 (") and "not quoted" in message


@pytest.mark.parametrize(("status", "body", "too_large"), [
    (400, {"error": "inference request batch-size must be <= 64 for 'mnist'"}, True),   # Triton
    (400, {"error": "Task size 2000 is larger than maximum input batch size 1000"}, True),  # TF Serving
    (422, {"error": {"code": "batch_too_large", "message": "1100 inputs exceeds the limit"}}, True),  # ours
    (422, {"detail": "Batch too large: 300 inputs, at most 256"}, True),
    (413, None, True),
    (400, {"error": "unexpected shape for input 'INPUT__0'"}, False),
    (422, {"detail": "field required"}, False),
    (500, {"error": "batch-size must be <= 64"}, False),
])
def test_serving_systems_words_for_too_large(status: int, body: object, too_large: bool) -> None:
    assert says_too_large(answer(status, body)) is too_large
