from __future__ import annotations

import numpy as np
import pytest

from bbrange.shared.wire import WireFormatError, check_shape, decode_npy, encode_npy, to_unit_interval


def test_npy_round_trip_keeps_dtype_and_values():
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(decode_npy(encode_npy(x)), x)
    labels = np.array([3, 1, 4], dtype=np.int64)
    assert decode_npy(encode_npy(labels)).dtype == np.int64


def test_uint8_is_scaled_to_the_unit_interval():
    x = np.array([[[[0, 255, 51]]]], dtype=np.uint8)
    np.testing.assert_allclose(to_unit_interval(x), [[[[0.0, 1.0, 0.2]]]])


@pytest.mark.parametrize("x, code", [
    (np.array([np.nan], np.float32), "non_finite"),
    (np.array([1.0001], np.float32), "out_of_range"),
    (np.array([0.5], np.float16), "unsupported_dtype"),
])
def test_refusals_carry_a_code(x, code):
    with pytest.raises(WireFormatError) as e:
        to_unit_interval(x)
    assert e.value.code == code


def test_shape_checks():
    check_shape(np.zeros((2, 3, 32, 32)), (3, 32, 32), 10)
    for shape, code in [((2, 32, 32, 3), "wrong_shape"), ((0, 3, 32, 32), "empty_batch"),
                        ((11, 3, 32, 32), "batch_too_large")]:
        with pytest.raises(WireFormatError) as e:
            check_shape(np.zeros(shape), (3, 32, 32), 10)
        assert e.value.code == code


def test_decoding_reads_what_numpy_wrote_whatever_the_header():
    """The decoder parses a header once and reuses it for the next body with the same header: every body still
    decodes to exactly what np.load reads, Fortran order and a version 2.0 header included, and stays writable."""
    import io

    rng = np.random.default_rng(0)
    arrays = [rng.random((2, 1, 28, 28), dtype=np.float32), rng.random((2, 1, 28, 28), dtype=np.float32),
              rng.integers(0, 255, (3, 3, 32, 32), dtype=np.uint8), np.asfortranarray(rng.random((4, 5)))]
    bodies = [encode_npy(a) for a in arrays[:3]]
    fortran = io.BytesIO()
    np.save(fortran, arrays[3])
    bodies.append(fortran.getvalue())
    v2 = io.BytesIO()
    np.lib.format.write_array(v2, arrays[0], version=(2, 0))
    bodies.append(v2.getvalue())
    for body in bodies:
        decoded = decode_npy(body)
        expected = np.load(io.BytesIO(body))
        assert decoded.dtype == expected.dtype and decoded.shape == expected.shape
        assert np.array_equal(decoded, expected) and decoded.flags.writeable
    with pytest.raises(WireFormatError) as e:
        decode_npy(bodies[0][:-4])  # the same cached header, a body 4 bytes short
    assert e.value.code == "malformed_npy"
