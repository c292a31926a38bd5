"""Convolution-aware initialization: filters orthogonal in the Fourier domain."""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import numpy as np
from keras import ops

from kinit.base import RandomInitializer, _compute_dtype, register
from kinit.kernel_shapes import dense_or_conv_dims, shape_error
from kinit.orthogonal import haar_orthogonal
from kinit.validation import check_number


@register
class ConvolutionAware(RandomInitializer):
    """Convolution filters orthogonal in the Fourier domain, plus noise, at He variance.

    Formula: for a kernel ``(*spatial, in, out)``, each output filter ``f``
    gets ``in`` real spectra ``c_{f,1..in}`` over the independent entries of
    the half spectrum ``rfftn`` of a ``spatial``-sized kernel (``m`` of
    them), orthonormal across the input channels (Haar distributed; when
    ``in > m``, in consecutive blocks of ``m`` orthonormal spectra). Each
    spectrum becomes a spatial kernel by the inverse real FFT, noise
    ``N(0, eps_std²)`` is added, and the whole tensor is scaled so that its
    variance is exactly He's ``2 / fan_in``:

        W[..., i, f] = s · (irfftn(c_{f,i}) + ε),   s = √(2 / fan_in / Var(irfftn(c) + ε))

    With ``eps_std=0`` the ``rfftn`` of the ``in`` kernels of every filter
    are orthogonal real spectra of equal norm. Half-spectrum entries that are
    complex conjugates of one another (present in 2-D and 3-D) share one
    coefficient, weighted ``1/√2`` each, so that the spectra stay exactly
    real, Hermitian and orthonormal. A kernel with a single spectral entry
    (all spatial sizes 1) draws its coefficients from ``N(0, eps_std²)``, as
    the reference implementation does, and then needs ``eps_std > 0``.
    A rank-2 (Dense) kernel gets an `Orthogonal` matrix instead.

    Examples:

    >>> values = kinit.ConvolutionAware(seed=0)(shape=(3, 3, 16, 32))
    >>> layer = keras.layers.Conv2D(32, 3, activation="relu", kernel_initializer=kinit.ConvolutionAware())

    Args:
        eps_std: standard deviation of the noise added to each filter, >= 0.
        seed: None or an int (successive calls of one instance differ).

    Reference:
        Aghajanyan 2017, "Convolution Aware Initialization"
        (arXiv:1702.06295); its keras-contrib implementation.
    """

    def __init__(self, eps_std: float = 0.05, seed: Optional[int] = None):
        self.eps_std = check_number(type(self).__name__, "eps_std", eps_std, minimum=0.0, strict=False)
        super().__init__(seed)

    def generate(self, shape, dtype):
        compute = _compute_dtype(dtype)
        spatial, fan_in, fan_out = dense_or_conv_dims(type(self).__name__, shape)
        if not spatial:
            return ops.cast(haar_orthogonal(self, fan_in, fan_out, compute), dtype)
        filters = self.spectral_filters(shape, spatial, fan_in, fan_out, compute)
        if self.eps_std > 0:
            filters = filters + self.normal((fan_out, fan_in, math.prod(spatial)), compute, 0.0, self.eps_std)
        filters = filters * ops.sqrt((2.0 / (fan_in * math.prod(spatial))) / ops.var(filters))
        # (out, in, N) -> (*spatial, in, out)
        filters = ops.reshape(filters, (fan_out, fan_in, *spatial))
        order = tuple(range(2, 2 + len(spatial))) + (1, 0)
        return ops.cast(ops.transpose(filters, order), dtype)

    def spectral_filters(self, shape, spatial, fan_in: int, fan_out: int, dtype):
        """``(out, in, prod(spatial))`` noise-free filters from orthonormal spectra."""
        basis = ops.convert_to_tensor(spectral_basis(tuple(spatial)), dtype=dtype)
        coefficients_per_filter = int(basis.shape[0])
        if coefficients_per_filter == 1:
            if self.eps_std == 0:
                raise shape_error(
                    type(self).__name__, shape,
                    "a kernel with spatial size 1 has a single spectral coefficient per filter, "
                    "drawn as noise, so it needs eps_std > 0 (or use Orthogonal)",
                )
            spectra = self.normal((fan_out, fan_in, 1), dtype, 0.0, self.eps_std)
        else:
            blocks = -(-fan_in // coefficients_per_filter)
            spectra = haar_orthogonal(
                self, coefficients_per_filter, coefficients_per_filter, dtype, batch=(fan_out, blocks)
            )
            spectra = ops.reshape(spectra, (fan_out, blocks * coefficients_per_filter, -1))[:, :fan_in]
        return ops.matmul(spectra, basis)


@functools.lru_cache(maxsize=64)
def spectral_basis(spatial: Sequence[int]) -> np.ndarray:
    """Rows: the real kernels whose ``rfftn`` is each unit real half spectrum.

    Returns an ``(m, prod(spatial))`` float64 array, ``m`` the number of
    independent real coefficients of an ``rfftn`` half spectrum. A half
    spectrum entry whose conjugate partner ``-k`` is also stored gets a
    shared coefficient split as ``1/√2`` on both, so every unit spectrum is
    Hermitian (its inverse transform exact) and the unit spectra are
    orthonormal. Deterministic; computed once per spatial shape.
    """
    spatial = tuple(spatial)
    half = spatial[:-1] + (spatial[-1] // 2 + 1,)
    units = []
    seen = set()
    for index in np.ndindex(*half):
        if index in seen:
            continue
        partner = tuple((-k) % n for k, n in zip(index, spatial))
        unit = np.zeros(half)
        if partner != index and partner[-1] < half[-1]:
            unit[index] = unit[partner] = math.sqrt(0.5)
            seen.add(partner)
        else:
            unit[index] = 1.0
        units.append(np.fft.irfftn(unit, s=spatial).ravel())
    return np.stack(units)
