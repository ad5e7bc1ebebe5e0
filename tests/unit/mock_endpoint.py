"""What the target-client tests share: the address of the endpoint httpx.MockTransport stands in for, and a batch
of MNIST-shaped inputs (the answers do not depend on them)."""

from __future__ import annotations

import numpy as np

URL = "http://oracle.test:8000"


def images(n: int) -> np.ndarray:
    return np.full((n, 1, 28, 28), 0.5, np.float32)
