from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from bbrange.attacker.engine import jsma
from bbrange.attacker.engine.jsma import best_pairs, max_iterations


def tiny_model(m: int = 12, classes: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(m, 16), nn.Tanh(), nn.Linear(16, classes)).double()


def reference_jsma(model: nn.Module, x: torch.Tensor, t: int, theta: float, upsilon: float,
                   search_domain: str = "all") -> tuple[torch.Tensor, bool, int]:
    """Algorithms 2 and 3 of the thesis, one sample, loops over pairs, the full Jacobian per iteration.

    Γ starts with every feature (Algorithm 2, line 2), or with those that can still move in θ's
    direction ("movable"); the search stops when no pair meets Algorithm 3's constraints.
    """
    x_adv = x.clone().reshape(-1)
    m = x_adv.numel()
    movable = search_domain == "movable"
    gamma = {i for i in range(m) if not movable or (x_adv[i] < 1 if theta > 0 else x_adv[i] > 0)}
    max_iter = math.floor(m * upsilon / 2 + 1e-9)
    it = 0
    f = lambda v: model(v.reshape(1, *x.shape))[0]  # noqa: E731
    s = int(f(x_adv).argmax())
    while s != t and it < max_iter and len(gamma) >= 2:
        jac = torch.autograd.functional.jacobian(f, x_adv)  # (classes, M)
        best, p1, p2 = 0.0, None, None
        for p, q in itertools.combinations(sorted(gamma), 2):
            alpha = float(jac[t, p] + jac[t, q])
            beta = float(sum(jac[j, p] + jac[j, q] for j in range(jac.shape[0]) if j != t))
            ok = alpha > 0 and beta < 0 if theta > 0 else alpha < 0 and beta > 0
            if ok and -alpha * beta > best:
                best, p1, p2 = -alpha * beta, p, q
        if p1 is None:
            break
        for p in (p1, p2):
            x_adv[p] = min(max(float(x_adv[p]) + theta, 0.0), 1.0)
            if x_adv[p] <= 0 or x_adv[p] >= 1:
                gamma.discard(p)
        s = int(f(x_adv).argmax())
        it += 1
    return x_adv.reshape(x.shape), s == t, it


@pytest.mark.parametrize("theta", [1.0, -1.0, 0.5])
@pytest.mark.parametrize("upsilon", [0.34, 1.0])
@pytest.mark.parametrize("search_domain", ["all", "movable"])
def test_agrees_with_the_slow_reference_on_tiny_inputs(theta: float, upsilon: float, search_domain: str) -> None:
    model = tiny_model()
    torch.manual_seed(1)
    x = torch.rand(6, 1, 3, 4, dtype=torch.float64)
    x[0, 0, 0, :2] = 1.0  # saturated features
    x[1, 0, 1, :2] = 0.0
    targets = torch.tensor([0, 1, 2, 3, 1, 2])
    result = jsma(model, x, targets, theta=theta, max_distortion=upsilon, batch_size=4, chunk_elems=40,
                  search_domain=search_domain)
    for i in range(len(x)):
        ref_x, ref_ok, ref_it = reference_jsma(model, x[i], int(targets[i]), theta, upsilon, search_domain)
        assert torch.equal(result.x_adv[i], ref_x), i
        assert bool(result.success[i]) == ref_ok
        assert int(result.iterations[i]) == ref_it


def brute_force_pairs(a: torch.Tensor, b: torch.Tensor, dom: torch.Tensor, theta: float):
    out = []
    for i in range(a.shape[0]):
        best, pair = 0.0, None
        idx = dom[i].nonzero().flatten().tolist()
        for p, q in itertools.combinations(idx, 2):
            al, be = float(a[i, p] + a[i, q]), float(b[i, p] + b[i, q])
            ok = al > 0 and be < 0 if theta > 0 else al < 0 and be > 0
            if ok and -al * be > best:
                best, pair = -al * be, {p, q}
        out.append(pair)
    return out


@pytest.mark.parametrize("theta", [1.0, -1.0])
def test_chunked_pair_search_is_the_exhaustive_argmax(theta: float) -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(20, 50, generator=g, dtype=torch.float64)
    b = torch.randn(20, 50, generator=g, dtype=torch.float64)
    dom = torch.rand(20, 50, generator=g) > 0.3
    dom[0] = False
    dom[0, :3] = True
    p, q, found = best_pairs(a, b, dom, theta, chunk_elems=100)
    for i, expected in enumerate(brute_force_pairs(a, b, dom, theta)):
        if expected is None:
            assert not found[i]
        else:
            assert found[i] and {int(p[i]), int(q[i])} == expected


def test_gtsrb_sized_search_fits_in_bounded_memory() -> None:
    # B = 100, M = 3,072: a full B×M×M float32 block would be 3.8 GB; the chunks stay at chunk_elems.
    g = torch.Generator().manual_seed(0)
    a = torch.randn(100, 3072, generator=g)
    b = torch.randn(100, 3072, generator=g)
    dom = torch.ones(100, 3072, dtype=torch.bool)
    p, q, found = best_pairs(a, b, dom, 1.0, chunk_elems=1 << 22)
    assert found.all() and (p != q).all()
    # Spot-check two samples against a dense search of their own.
    for i in (0, 57):
        score = torch.relu(a[i, :, None] + a[i, None, :]) * torch.relu(-(b[i, :, None] + b[i, None, :]))
        score.fill_diagonal_(0)
        assert torch.isclose(score[p[i], q[i]], score.max())


def test_never_exceeds_upsilon_nor_leaves_the_unit_box(quick_oracle_model: nn.Module, mnist_test) -> None:
    x = torch.from_numpy(mnist_test.x[:10]).repeat_interleave(2, 0)
    targets = torch.tensor([(int(y) + k) % 10 for y in mnist_test.y[:10] for k in (1, 5)])
    for theta in (1.0, -1.0):
        upsilon = 0.05
        result = jsma(quick_oracle_model, x, targets, theta=theta, max_distortion=upsilon)
        changed = (result.x_adv != x).reshape(len(x), -1).float().mean(1)
        assert result.max_iter == max_iterations(784, upsilon) == 19
        assert (changed <= upsilon).all()
        assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
        assert (result.iterations <= result.max_iter).all()
        # Success is judged by the model itself.
        pred = quick_oracle_model(result.x_adv).argmax(1)
        assert torch.equal(pred == targets, result.success)


def test_finished_samples_leave_the_batch() -> None:
    model = tiny_model(m=16, classes=3)
    sizes: list[int] = []

    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sizes.append(x.shape[0])
            return self.inner(x)

    torch.manual_seed(0)
    x = torch.rand(30, 1, 4, 4, dtype=torch.float64)
    targets = torch.arange(30) % 3
    result = jsma(Spy(), x, targets, max_distortion=1.0)
    assert sizes[0] == 30
    assert sizes == sorted(sizes, reverse=True)
    # Each sample takes part in exactly one forward pass per modification plus the one that stops it.
    assert sum(sizes) == int((result.iterations + 1).sum())
    assert sizes[-1] < 30
