"""Resumable evaluation (`ode_zoo.zoo.resumable`): an evaluation or a sample draw stopped
after some batches and run again gives exactly the numbers of an uninterrupted run,
evaluating only the batches left; other weights start over."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ode_zoo
from ode_zoo.zoo import resumable
from ode_zoo.zoo.evaluate import evaluate_model
from ode_zoo.zoo.resumable import MetricCheckpoint, resumable_batches
from ode_zoo.zoo.sample_quality import draw_samples

RK4_1 = {"method": "rk4", "num_steps": 1}


@pytest.fixture
def toy():
    """A tiny untrained toy flow whose config evaluates its 10,000 test points in 4 batches."""
    model = ode_zoo.load("ffjord_toy_8gaussians", load_weights=False, hidden_units=[8],
                         eval_solver=RK4_1)
    config = {**model.zoo_config, "evaluation": {"split": "test", "batch_size": 2500}}
    return model, config


def stop_after(monkeypatch, batches: int) -> None:
    """Make `MetricCheckpoint` raise KeyboardInterrupt once `batches` are saved."""
    save = MetricCheckpoint.on_test_batch_end

    def interrupted(self, batch, logs=None):
        save(self, batch, logs)
        if self.done == batches:
            raise KeyboardInterrupt

    monkeypatch.setattr(MetricCheckpoint, "on_test_batch_end", interrupted)


def test_an_interrupted_evaluation_continues_to_the_uninterrupted_numbers(toy, tmp_path,
                                                                          monkeypatch):
    model, config = toy
    whole = evaluate_model(model, config, verbose=0)
    assert set(whole) == {"test_nll", "test_forward_nfe"}      # as published
    with monkeypatch.context() as patch:
        stop_after(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            evaluate_model(model, config, verbose=0, state_dir=tmp_path)
    evaluated = []
    evaluate = model.evaluate
    monkeypatch.setattr(model, "evaluate", lambda data, **kw: evaluated.append(
        int(data.cardinality())) or evaluate(data, **kw))
    resumed = evaluate_model(model, config, verbose=0, state_dir=tmp_path)
    assert evaluated == [2]                         # only the two batches left
    assert resumed.keys() == whole.keys()
    for name, value in whole.items():
        assert resumed[name] == pytest.approx(value, rel=1e-6), name
    # Finished: a rerun reads the numbers without evaluating anything.
    assert evaluate_model(model, config, verbose=0, state_dir=tmp_path) == resumed
    assert evaluated == [2]


def test_other_weights_start_over(toy, tmp_path, monkeypatch):
    model, config = toy
    with monkeypatch.context() as patch:
        stop_after(patch, 1)
        with pytest.raises(KeyboardInterrupt):
            evaluate_model(model, config, verbose=0, state_dir=tmp_path)
    model.set_weights([w + 0.01 for w in model.get_weights()])
    expected = evaluate_model(model, config, verbose=0)
    again = evaluate_model(model, config, verbose=0, state_dir=tmp_path)
    for name, value in expected.items():
        assert again[name] == pytest.approx(value, rel=1e-6), name


def test_samples_continue_from_the_saved_batches(toy, tmp_path, monkeypatch):
    model, _ = toy
    whole = draw_samples(model, 25, seed=3, batch_size=10, verbose=0)
    cache = (tmp_path / "samples.npz", "key")
    calls = []
    real_save = resumable._save

    def save_then_stop(path, arrays):
        real_save(path, arrays)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(resumable, "_save", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            draw_samples(model, 25, seed=3, batch_size=10, verbose=0, cache=cache)
    drawn = []
    sample = model.sample
    monkeypatch.setattr(model, "sample", lambda z: drawn.append(int(z.shape[0])) or sample(z))
    np.testing.assert_array_equal(
        draw_samples(model, 25, seed=3, batch_size=10, verbose=0, cache=cache), whole)
    assert drawn == [5]                             # only the last batch was drawn


def test_a_damaged_state_file_starts_over(tmp_path: Path):
    cache = (tmp_path / "parts.npz", "key")
    cache[0].write_bytes(b"not a zip file")
    assert resumable_batches(2, lambda i: np.array([i]), cache, verbose=0).tolist() == [0, 1]
