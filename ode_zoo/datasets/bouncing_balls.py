"""Bouncing balls (as in ODE2VAE's third data set, after Sutskever et al. 2009):
equal discs of equal mass in the unit box with elastic collisions against the
walls and each other, rendered as soft grey discs on 32×32 frames.

Seeded and deterministic: sequence i of a seed depends only on (seed, i), so a
larger `num_sequences` extends a set without changing its first sequences.
Splits: "train" (5,000 sequences, seed 0), "validation" (500, seed 1),
"test" (500, seed 2), each of 20 frames of 3 balls of radius 0.1.

Example:
    >>> frames = load_bouncing_balls("test", num_sequences=2)
    >>> frames.shape, frames.dtype.name
    ((2, 20, 32, 32, 1), 'uint8')
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from ode_zoo.datasets.pipelines import inputs_dataset

SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}
SPLIT_SIZES = {"train": 5000, "validation": 500, "test": 500}
NUM_FRAMES, NUM_BALLS, RADIUS, FRAME_SIZE = 20, 3, 0.1, 32
SPEED_RANGE = (0.03, 0.07)          # box widths per frame
_RENDER_CHUNK = 128                 # sequences rendered at once (bounds memory)


def _initial_state(rng: np.random.Generator, num_balls: int,
                   radius: float) -> Tuple[np.ndarray, np.ndarray]:
    """Non-overlapping positions inside the walls (rejection sampling), velocities
    of uniform direction and speed in SPEED_RANGE."""
    while True:
        positions = rng.uniform(radius, 1 - radius, (num_balls, 2))
        gaps = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        if np.all(gaps[np.triu_indices(num_balls, 1)] >= 2 * radius):
            break
    angle = rng.uniform(0, 2 * np.pi, num_balls)
    speed = rng.uniform(*SPEED_RANGE, num_balls)
    return positions, speed[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _collide_pairs(x: np.ndarray, v: np.ndarray, radius: float) -> None:
    """Elastic collisions of equal masses, in place: overlapping, approaching pairs
    swap their velocity components along the line of centres and are pushed apart."""
    num_balls = x.shape[1]
    for i in range(num_balls):
        for j in range(i + 1, num_balls):
            offset = x[:, j] - x[:, i]
            distance = np.maximum(np.linalg.norm(offset, axis=-1, keepdims=True), 1e-12)
            normal = offset / distance
            closing = np.sum((v[:, j] - v[:, i]) * normal, axis=-1, keepdims=True)
            hit = (distance < 2 * radius) & (closing < 0)
            exchange = np.where(hit, closing, 0.0) * normal
            v[:, i] += exchange
            v[:, j] -= exchange
            push = np.where(hit, (2 * radius - distance) / 2, 0.0) * normal
            x[:, i] -= push
            x[:, j] += push


def _reflect_walls(x: np.ndarray, v: np.ndarray, radius: float) -> None:
    """Mirror balls that crossed a wall back inside and reverse that velocity component."""
    low, high = radius, 1 - radius
    below, above = x < low, x > high
    x[:] = np.where(below, 2 * low - x, np.where(above, 2 * high - x, x))
    v[:] = np.where(below, np.abs(v), np.where(above, -np.abs(v), v))


def simulate_balls(num_sequences: int, num_frames: int = NUM_FRAMES, num_balls: int = NUM_BALLS,
                   radius: float = RADIUS, seed: int = 0,
                   substeps: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """Ball centres and velocities float64 [N, num_frames, num_balls, 2] in the unit
    box (velocities in box widths per frame), `substeps` Euler steps per frame.

    Example:
        >>> x, v = simulate_balls(4, num_frames=5, seed=1)
        >>> x.shape, bool(((x >= 0.1) & (x <= 0.9)).all())
        ((4, 5, 3, 2), True)
    """
    if num_balls < 1 or not 0 < radius < 0.5:
        raise ValueError(f"need num_balls >= 1 and 0 < radius < 0.5, got {num_balls}, {radius}.")
    if num_balls * np.pi * radius ** 2 > 0.4:
        raise ValueError(f"{num_balls} balls of radius {radius} cover over 40% of the box; "
                         "use fewer or smaller balls.")
    states = [_initial_state(np.random.default_rng([seed, i]), num_balls, radius)
              for i in range(int(num_sequences))]
    x = np.array([s[0] for s in states]).reshape(-1, num_balls, 2)
    v = np.array([s[1] for s in states]).reshape(-1, num_balls, 2)
    positions, velocities = [x.copy()], [v.copy()]
    for _ in range(int(num_frames) - 1):
        for _ in range(int(substeps)):
            x += v / substeps
            _collide_pairs(x, v, radius)
            _reflect_walls(x, v, radius)
        positions.append(x.copy())
        velocities.append(v.copy())
    return np.stack(positions, axis=1), np.stack(velocities, axis=1)


def render_balls(positions: np.ndarray, radius: float = RADIUS,
                 size: int = FRAME_SIZE) -> np.ndarray:
    """Frames uint8 [N, T, size, size, 1] (raw 0–255) of balls at `positions`
    [N, T, B, 2]: each a soft disc, 1/(1 + exp((d - radius)/(a quarter pixel))) at
    distance d from its centre, overlaps taking the brighter value. Row r and
    column c show the point (x, y) = ((c + ½)/size, (r + ½)/size).

    Example:
        >>> frame = render_balls(np.full((1, 1, 1, 2), 0.5))[0, 0, :, :, 0]
        >>> int(frame[16, 16]), int(frame[0, 0])
        (255, 0)
    """
    centres = ((np.arange(size) + 0.5) / size).astype(np.float32)
    softness = np.float32(0.25 / size)
    frames = []
    for start in range(0, len(positions), _RENDER_CHUNK):
        x = positions[start:start + _RENDER_CHUNK].astype(np.float32)
        dx = centres - x[..., 0:1]                      # [n, T, B, size] along columns
        dy = centres - x[..., 1:2]                      # [n, T, B, size] along rows
        distance = np.sqrt(dy[..., :, None] ** 2 + dx[..., None, :] ** 2)
        intensity = 1 / (1 + np.exp(np.clip((distance - radius) / softness, -50, 50)))
        frames.append(np.rint(255 * intensity.max(axis=2)).astype(np.uint8)[..., None])
    return np.concatenate(frames, axis=0)


def load_bouncing_balls(split: str = "train",
                        num_sequences: Optional[int] = None) -> np.ndarray:
    """Frames uint8 [N, 20, 32, 32, 1] (raw 0–255) of a split; N defaults to
    SPLIT_SIZES[split], fewer or more keep the same first sequences."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"Unknown bouncing balls split {split!r}; available splits are "
                         f"{list(SPLIT_SEEDS)}.")
    count = SPLIT_SIZES[split] if num_sequences is None else num_sequences
    if int(count) != count or count < 1:
        raise ValueError(f"num_sequences must be a positive integer, got {num_sequences!r}.")
    positions, _ = simulate_balls(int(count), seed=SPLIT_SEEDS[split])
    return render_balls(positions)


def bouncing_balls(split: str = "train", batch_size: int = 25,
                   num_sequences: Optional[int] = None, shuffle_seed: Optional[int] = None,
                   epoch: int = 0, skip_batches: int = 0,
                   drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches float32 [batch_size, 20, 32, 32, 1] of raw pixels 0–255 of
    `load_bouncing_balls(split, num_sequences)`; see `ode_zoo.datasets.inputs_dataset`
    for the order."""
    return inputs_dataset(load_bouncing_balls(split, num_sequences), batch_size,
                          shuffle_seed=shuffle_seed, epoch=epoch,
                          skip_batches=skip_batches, drop_remainder=drop_remainder)
