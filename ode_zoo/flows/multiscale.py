"""`MultiscaleFlow`: a multiscale composition of flows on images (Dinh et al. 2017),
as FFJORD and Glow use it.

From data to latent (`encode`), every scale squeezes its input
([H, W, C] → [H/2, W/2, 4C]), runs its blocks on the flattened state, and,
except the last scale, factors out half of the channels: they go straight to the
latent (a standard normal there), the other half continues to the next scale.
The latent [N, D] concatenates the factored-out parts, scale by scale, then the
last scale's output, each flattened. Squeezes and splits are permutations, so
the log-det is the sum of the blocks' log-dets. `decode` runs everything
backwards (latent to data).

Blocks are bijectors on flat events [N, D_s] whose forward map goes from the
latent side to the data side (`ode_zoo.flows.FFJORD`'s convention); `encode`
uses their inverses, `decode` their forward maps. A scale's blocks are listed
from the data side.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.flows import FFJORD
    >>> shrink = lambda: FFJORD(lambda t, z: -z, method="rk4", num_steps=2)
    >>> flow = MultiscaleFlow((4, 4, 1), [[shrink()], [shrink()]])
    >>> flow.scale_shapes
    [(2, 2, 4), (1, 1, 8)]
    >>> latent, log_det = flow.encode(tf.ones([3, 4, 4, 1]))
    >>> latent.shape, log_det.numpy().round(4).tolist()    # 16 + 8 dimensions expanded
    (TensorShape([3, 16]), [24.0, 24.0, 24.0])
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from ode_zoo.flows.ffjord import FlowResult
from ode_zoo.flows.squeeze import squeeze, unsqueeze

Shape = Tuple[int, int, int]


def scale_shapes(image_shape: Sequence[int], num_scales: int) -> List[Shape]:
    """The (H, W, C) each scale's blocks act on: squeezed, then half the channels
    factored out before the next scale.

    Example:
        >>> scale_shapes((28, 28, 1), 2)
        [(14, 14, 4), (7, 7, 8)]
    """
    height, width, channels = (int(d) for d in image_shape)
    if int(num_scales) != num_scales or num_scales < 1:
        raise ValueError(f"num_scales must be a positive integer, got {num_scales!r}.")
    shapes = []
    for scale in range(num_scales):
        if height % 2 or width % 2:
            raise ValueError(
                f"Images of shape {tuple(image_shape)} allow at most {scale} scales (each "
                f"squeezes an even height and width in half), got num_scales={num_scales}.")
        height, width, channels = height // 2, width // 2, 4 * channels
        shapes.append((height, width, channels))
        channels //= 2
    return shapes


def factor_out(images: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Split the channels in half: (kept, factored_out), the kept half first.

    Example:
        >>> import tensorflow as tf
        >>> kept, out = factor_out(tf.reshape(tf.range(4.0), [1, 1, 1, 4]))
        >>> kept.numpy().ravel().tolist(), out.numpy().ravel().tolist()
        ([0.0, 1.0], [2.0, 3.0])
    """
    half = images.shape[-1] // 2
    return images[..., :half], images[..., half:]


def join_factored(kept: tf.Tensor, factored_out: tf.Tensor) -> tf.Tensor:
    """The inverse of `factor_out`: the channels of both halves, kept half first.

    Example:
        >>> import tensorflow as tf
        >>> join_factored(tf.zeros([1, 2, 2, 2]), tf.ones([1, 2, 2, 2])).shape
        TensorShape([1, 2, 2, 4])
    """
    return tf.concat([kept, factored_out], axis=-1)


# One block's solve: (block, flat state) -> [output, log-det, ...per-example channels].
_BlockSolve = Callable[[tfp.bijectors.Bijector, tf.Tensor], List[tf.Tensor]]


class MultiscaleFlow:
    """Blocks at several scales composed into one bijection images ↔ latent [N, D].

    Args:
      image_shape: (H, W, C) of the data-side images.
      blocks: one list of bijectors per scale (at least one each), on flat events
        of size H_s·W_s·C_s for the scale's shape in `scale_shapes`.
    """

    def __init__(self, image_shape: Sequence[int], blocks: Sequence[Sequence]):
        self.image_shape: Shape = tuple(int(d) for d in image_shape)
        self.scale_shapes = scale_shapes(self.image_shape, len(blocks))
        if any(len(scale_blocks) == 0 for scale_blocks in blocks):
            raise ValueError("Every scale of a MultiscaleFlow needs at least one block.")
        self.blocks = [list(scale_blocks) for scale_blocks in blocks]
        self.dim = int(np.prod(self.image_shape))

    def encode(self, images: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """Data [N, H, W, C] → (latent [N, D], log|det ∂latent/∂images| [N])."""
        def solve(block, flat):
            return [block.inverse(flat), block.inverse_log_det_jacobian(flat, event_ndims=1)]
        latent, (log_det,) = self._encode(images, solve, num_channels=1)
        return latent, log_det

    def encode_with_regularizers(self, images: tf.Tensor) -> FlowResult:
        """`encode` plus RNODE's kinetic and Jacobian integrals summed over the
        blocks (which must be FFJORDs built with `regularize=True`)."""
        def solve(block, flat):
            return list(block.inverse_with_regularizers(flat))
        latent, channels = self._encode(images, solve, num_channels=3)
        return FlowResult(latent, *channels)

    def decode(self, latent: tf.Tensor) -> tf.Tensor:
        """Latent [N, D] → data [N, H, W, C] through the blocks' forward maps."""
        if latent.shape.rank != 2 or latent.shape[-1] != self.dim:
            raise ValueError(f"decode expects a latent of shape [N, {self.dim}], got "
                             f"{latent.shape}.")
        sizes = [int(np.prod(shape)) // 2 for shape in self.scale_shapes[:-1]]
        *factored, state = tf.split(latent, sizes + [self.dim - sum(sizes)], axis=-1)
        for scale in reversed(range(len(self.blocks))):
            height, width, channels = self.scale_shapes[scale]
            if scale < len(self.blocks) - 1:
                half = [-1, height, width, channels // 2]
                state = tf.reshape(join_factored(tf.reshape(state, half),
                                                 tf.reshape(factored[scale], half)),
                                   [-1, height * width * channels])
            for block in reversed(self.blocks[scale]):
                state = block.forward(state)
            state = unsqueeze(tf.reshape(state, [-1, height, width, channels]))
        return state

    def _encode(self, images: tf.Tensor, solve: _BlockSolve,
                num_channels: int) -> Tuple[tf.Tensor, List[tf.Tensor]]:
        """The latent and the per-example channels of `solve`, summed over blocks."""
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"encode expects images of shape [N, "
                             f"{', '.join(map(str, self.image_shape))}], got {images.shape}.")
        totals = [tf.zeros(tf.shape(images)[:1], images.dtype)] * num_channels
        latents, state = [], images
        for scale, shape in enumerate(self.scale_shapes):
            flat = tf.reshape(squeeze(state), [-1, int(np.prod(shape))])
            for block in self.blocks[scale]:
                flat, *channels = solve(block, flat)
                totals = [total + channel for total, channel in zip(totals, channels)]
            state = tf.reshape(flat, [-1, *shape])
            if scale < len(self.scale_shapes) - 1:
                state, factored = factor_out(state)
                latents.append(tf.reshape(factored, [tf.shape(images)[0], -1]))
        latents.append(tf.reshape(state, [tf.shape(images)[0], -1]))
        return tf.concat(latents, axis=-1), totals
