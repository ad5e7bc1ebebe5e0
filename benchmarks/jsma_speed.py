"""Benchmark 4: JSMA throughput beside advertorch's JSMA (exact pairs) and IBM ART's SaliencyMapMethod
(an approximation), on the same weights, inputs and settings, in the same run.

    .venv/bin/pip install -e '.[bench]'      # adversarial-robustness-toolbox==1.20.1, advertorch==0.2.3
    .venv/bin/python benchmarks/jsma_speed.py

Settings shared by all three: the MNIST LeNet oracle, the first N test images x their 9 other classes,
θ = +1, Υ (gamma) = 14.5%, targeted, clip [0, 1]. Success is re-judged here by the same model for all
three, and the L0 distortion measured the same way.
"""

from __future__ import annotations

import collections.abc
import json
import time
from pathlib import Path

import numpy as np
import torch
import typer
from oracles import frozen, load_oracle_model  # noqa: I001 - benchmarks/ is the script's directory

from bbrange.attacker.engine import distortion, jsma
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import as_batch, resolve_device


def import_advertorch():
    """advertorch 0.2.3 imports `zero_gradients` from torch.autograd.gradcheck, removed in torch 2.x:
    define that small function there first (the definition torch 1.x had)."""
    import importlib

    # `torch.autograd.gradcheck` the attribute is the function; the module is what advertorch imports from.
    gradcheck = importlib.import_module("torch.autograd.gradcheck")

    shimmed = False
    if not hasattr(gradcheck, "zero_gradients"):
        def zero_gradients(x: object) -> None:
            if isinstance(x, torch.Tensor):
                if x.grad is not None:
                    x.grad.detach_()
                    x.grad.zero_()
            elif isinstance(x, collections.abc.Iterable):
                for elem in x:
                    zero_gradients(elem)

        gradcheck.zero_gradients = zero_gradients  # type: ignore[attr-defined]
        shimmed = True
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("torchvision") is None:
        # advertorch's package __init__ imports its JPEG/bit-squeezing defences, which build two torchvision
        # transforms at import time; JSMA never uses them, so unusable stand-ins are enough.
        def unavailable(*_: object, **__: object) -> object:
            def fail(*_: object, **__: object) -> None:
                raise RuntimeError("torchvision is not installed (stub for advertorch's import only)")
            return fail

        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
        tv.transforms.ToPILImage = unavailable  # type: ignore[attr-defined]
        tv.transforms.ToTensor = unavailable  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tv.transforms  # type: ignore[attr-defined]
        shimmed = True
    from advertorch.attacks import JacobianSaliencyMapAttack

    return JacobianSaliencyMapAttack, shimmed


def measure(name: str, craft, model: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor) -> dict:
    started = time.perf_counter()
    x_adv = craft(x, targets)
    wall = time.perf_counter() - started
    x_adv = torch.as_tensor(np.asarray(x_adv) if not isinstance(x_adv, torch.Tensor) else x_adv).to(x.device)
    with torch.no_grad():
        success = (model(x_adv).argmax(1) == targets).cpu().numpy()
    d = distortion(x, x_adv)
    return {"name": name, "samples": len(x), "wall_s": wall, "samples_per_s": len(x) / wall,
            "success": float(success.mean()), "l0_successful": d.mean_l0(success), "l0_all": d.mean_l0(),
            "max_l0": float(d.l0.max()), "in_box": bool(x_adv.min() >= 0 and x_adv.max() <= 1)}


def main(
    images: int = typer.Option(20, help="N test images x 9 targets"),
    advertorch_images: int = typer.Option(0, help="N for advertorch if smaller than --images (0: the same); "
                                          "it is an order of magnitude slower"),
    upsilon: float = typer.Option(0.145),
    theta: float = typer.Option(1.0),
    batch_size: int = typer.Option(180, help="samples per batch, for every implementation"),
    oracle: str = typer.Option("mnist"),
    device: str = typer.Option("auto"),
    json_out: Path = typer.Option(None),
) -> None:
    dev = resolve_device(device)
    model, card = load_oracle_model(oracle, dev)
    model = frozen(model)
    test = load_dataset("mnist", "test")
    idx = np.repeat(np.arange(images), 9)
    tgt = np.array([t for y in test.y[:images] for t in range(10) if t != y])
    x = as_batch(test.x[idx], dev)
    targets = torch.from_numpy(tgt).to(dev)
    n_peer = (advertorch_images or images) * 9
    print(f"oracle {oracle} ({card['architecture']}), device {dev}, torch threads {torch.get_num_threads()}; "
          f"θ={theta:+g}, Υ={upsilon:.1%}, targeted, {images} images x 9 targets = {len(x)} samples "
          f"(advertorch: the first {n_peer}), batch {batch_size}")
    rows = []

    def ours(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        return jsma(model, xb, tb, theta=theta, max_distortion=upsilon, batch_size=batch_size).x_adv

    rows.append(measure("bbrange jsma (exact pairs)", ours, model, x, targets))

    try:
        jsma_cls, shimmed = import_advertorch()
        if shimmed:
            print("note: advertorch 0.2.3 imports torch.autograd.gradcheck.zero_gradients, removed in torch 2.x: this "
                  "benchmark defines it there before importing advertorch (and, torchvision being absent, stubs the two "
                  "torchvision transforms advertorch's defences build at import; JSMA does not use them)")
        adv = jsma_cls(model, num_classes=10, clip_min=0.0, clip_max=1.0, theta=theta, gamma=upsilon)

        def advertorch_jsma(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
            return torch.cat([adv.perturb(xb[i : i + batch_size], tb[i : i + batch_size])
                              for i in range(0, len(xb), batch_size)])

        rows.append(measure("advertorch 0.2.3 JSMA (exact pairs)", advertorch_jsma, model, x[:n_peer], targets[:n_peer]))
    except ImportError as e:
        print(f"advertorch unavailable ({e}); install the bench extra")

    try:
        from art.attacks.evasion import SaliencyMapMethod
        from art.estimators.classification import PyTorchClassifier

        classifier = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                       nb_classes=10, clip_values=(0.0, 1.0), device_type="gpu" if dev.type == "cuda" else "cpu")
        art_attack = SaliencyMapMethod(classifier, theta=theta, gamma=upsilon, batch_size=batch_size, verbose=False)

        def art_jsma(xb: torch.Tensor, tb: torch.Tensor) -> np.ndarray:
            onehot = np.eye(10, dtype=np.float32)[tb.cpu().numpy()]
            return art_attack.generate(xb.cpu().numpy(), y=onehot)

        rows.append(measure("ART 1.20.1 SaliencyMapMethod", art_jsma, model, x, targets))
    except ImportError as e:
        print(f"ART unavailable ({e}); install the bench extra")

    print(f"\n{'implementation':38s}{'samples':>8s}{'samples/s':>11s}{'success':>9s}{'L0 succ.':>10s}{'L0 all':>8s}"
          f"{'max L0':>8s}")
    for r in rows:
        print(f"{r['name']:38s}{r['samples']:8d}{r['samples_per_s']:11.2f}{r['success']:9.2%}"
              f"{r['l0_successful']:10.2%}{r['l0_all']:8.2%}{r['max_l0']:8.2%}")
    base = rows[0]["samples_per_s"]
    for r in rows[1:]:
        print(f"bbrange is {base / r['samples_per_s']:.1f}x {r['name']}")
    if json_out:
        json_out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    typer.run(main)
