"""Zoo demo: load the published MNIST flow whose samples read most as digits
(`best_image_flow`: the classifier's confident share in each flow's metadata), draw
samples from seeded base noise, measure the bits/dim of as many MNIST test digits,
and write both as grids in a PNG. Without the MNIST files it measures the 64 test digits shipped with the
package (`shipped_digits`) and says so.

Example:
    >>> import ode_zoo
    >>> tiny = ode_zoo.load("ffjord_mnist", load_weights=False, hidden_filters=[4],
    ...                     num_steps=1, eval_solver={"method": "rk4", "num_steps": 1})
    >>> result = run_flow_demo("flow.png", count=4, model=tiny, verbose=0)  # doctest: +SKIP
    >>> result.count, result.output.name                                 # doctest: +SKIP
    (4, 'flow.png')
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import keras
import numpy as np

from ode_zoo.demos.flow_samples import image_samples
from ode_zoo.demos.image_grid import plot_image_grids
from ode_zoo.demos.shipped_digits import demo_test_digits
from ode_zoo.zoo.catalog import best_image_flow

DEFAULT_COUNT = 64         # an 8×8 grid of samples and one of test digits


@dataclass(frozen=True)
class FlowDemoResult:
    """What one run of the flow demo produced: the PNG, how many images were sampled
    (and test digits measured), the measured and the published (None if
    unpublished) mean test bits/dim, and the seconds spent sampling, measuring and
    in all; `name` is the flow's zoo name (or class name)."""

    name: str
    output: Path
    count: int
    bits_per_dim: float
    published_bits_per_dim: Optional[float]
    sample_seconds: float
    measure_seconds: float
    seconds: float


def run_flow_demo(output: Union[str, Path] = "flow.png", count: int = DEFAULT_COUNT,
                  seed: int = 0, data_dir: Optional[str] = None,
                  model: Union[None, str, keras.Model] = None,
                  verbose: int = 1) -> FlowDemoResult:
    """Sample `count` images from base-noise seed `seed` and measure the bits/dim of
    the first `count` MNIST test digits (at most the 64 shipped ones when the test
    set is not found) with `model` (a zoo name, a preset directory, a loaded image
    flow, or None: the best published MNIST flow by sample quality, said as it is
    chosen); draw both in `output`."""
    import ode_zoo

    def say(message: str) -> None:
        if verbose:
            print(message, flush=True)

    started = time.time()
    if model is None:
        choice = best_image_flow("mnist")
        others = "; ".join(f"{name} {share:.1%}" for name, share in choice.others.items())
        say(f"showing {choice.name}, the published MNIST flow whose samples read most as "
            f"digits: an MNIST classifier is confident (p >= 0.9) on {choice.confident_share:.1%}"
            f" of its 10,000 samples" + (f" ({others})" if others else ""))
        model = choice.name
    if isinstance(model, str):
        name, model = model, ode_zoo.load(model)
        say(f"loaded {name} in {time.time() - started:.1f}s")
    else:
        name = (getattr(model, "zoo_config", None) or {}).get("name", type(model).__name__)
    published = model.zoo_metadata.get("metrics", {}).get("test_bits_per_dim")

    clock = time.time()
    samples = image_samples(model, count, seed)
    sample_seconds = time.time() - clock
    say(f"sampled {count} images (base-noise seed {seed}) in {sample_seconds:.1f}s")

    clock = time.time()
    images = demo_test_digits(count, data_dir, say)[0].astype(np.float32)
    bits = float(np.mean(model.bits_per_dim(images)))
    measure_seconds = time.time() - clock
    say(f"measured bits/dim of {len(images)} test digits in {measure_seconds:.1f}s")

    output = Path(output)
    plot_image_grids({f"test digits ({len(images)}): {bits:.3f} bits/dim": images,
                      f"model samples ({count}, seed {seed})": samples}, output,
                     name + (": not published" if published is None
                             else f": published test bits/dim {published:.3f}"))
    return FlowDemoResult(name, output, count, bits, published, sample_seconds, measure_seconds,
                          time.time() - started)
