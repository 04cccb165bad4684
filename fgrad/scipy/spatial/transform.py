"""``fgrad.scipy.spatial.transform``: JAX's ``jax.scipy.spatial.transform`` (``Rotation``, ``Slerp``).

A ``Rotation`` holds unit quaternions ``(x, y, z, w)`` (scalar last), one (``quat`` of shape
``(4,)``, a single rotation) or a stack (``(..., 4)``). Both classes are named tuples, hence pytrees:
they pass through ``jit``, ``vmap`` and ``grad`` like any container of arrays. Every conversion works
on the trailing axis, so batches need no loop.

Example::

    r = Rotation.from_euler("z", 90, degrees=True)
    r.apply(fnp.array([1., 0., 0.]))          # ~[0, 1, 0]
"""
from __future__ import annotations

import re
import typing
from typing import Any, Sequence

import numpy as np

from fgrad import numpy as fnp
from fgrad import random as frandom

__all__ = ["Rotation", "Slerp"]

_AXIS = {"x": 0, "y": 1, "z": 2}


# --- quaternion algebra on the last axis -------------------------------------------------------------

def _parts(q: Any) -> tuple:
    return q[..., 0], q[..., 1], q[..., 2], q[..., 3]


def _norm(v: Any) -> Any:
    return fnp.sqrt(fnp.sum(v * v, axis=-1))


def _normalize(q: Any) -> Any:
    return q / _norm(q)[..., None]


def _compose(p: Any, q: Any) -> Any:
    """The quaternion of ``p`` after ``q`` (Hamilton product, scalar last)."""
    cross = fnp.cross(p[..., :3], q[..., :3])
    pw, qw = p[..., 3:], q[..., 3:]
    vector = pw * q[..., :3] + qw * p[..., :3] + cross
    scalar = pw[..., 0] * qw[..., 0] - fnp.sum(p[..., :3] * q[..., :3], axis=-1)
    return fnp.concatenate([vector, scalar[..., None]], axis=-1)


def _as_matrix(q: Any) -> Any:
    x, y, z, w = _parts(q)
    rows = [[x * x - y * y - z * z + w * w, 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), -x * x + y * y - z * z + w * w, 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), -x * x - y * y + z * z + w * w]]
    return fnp.stack([fnp.stack(row, axis=-1) for row in rows], axis=-2)


def _from_matrix(m: Any) -> Any:
    """Shepperd's method: build the quaternion from the largest of the diagonal and the trace."""
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    decision = fnp.stack([m[..., 0, 0], m[..., 1, 1], m[..., 2, 2], trace], axis=-1)
    choice = fnp.argmax(decision, axis=-1)
    candidates = []
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        parts = [None] * 4
        parts[i] = 1 - trace + 2 * m[..., i, i]
        parts[j] = m[..., j, i] + m[..., i, j]
        parts[k] = m[..., k, i] + m[..., i, k]
        parts[3] = m[..., k, j] - m[..., j, k]
        candidates.append(fnp.stack(parts, axis=-1))
    candidates.append(fnp.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                                 m[..., 1, 0] - m[..., 0, 1], 1 + trace], axis=-1))
    quat = candidates[3]
    for i in range(3):
        quat = fnp.where((choice == i)[..., None], candidates[i], quat)
    return _normalize(quat)


def _from_rotvec(rotvec: Any, degrees: bool) -> Any:
    if degrees:
        rotvec = fnp.deg2rad(rotvec)
    angle = _norm(rotvec)
    angle2 = angle * angle
    small = 0.5 - angle2 / 48 + angle2 * angle2 / 3840          # sin(a/2)/a near 0
    large = fnp.sin(angle / 2) / fnp.where(angle <= 1e-3, 1., angle)
    scale = fnp.where(angle <= 1e-3, small, large)
    return fnp.concatenate([scale[..., None] * rotvec, fnp.cos(angle / 2)[..., None]], axis=-1)


def _as_rotvec(q: Any, degrees: bool) -> Any:
    q = fnp.where(q[..., 3:] < 0, -q, q)                       # w >= 0: angle in [0, pi]
    angle = 2. * fnp.arctan2(_norm(q[..., :3]), q[..., 3])
    angle2 = angle * angle
    small = 2 + angle2 / 12 + 7 * angle2 * angle2 / 2880       # a/sin(a/2) near 0
    large = angle / fnp.sin(fnp.where(angle <= 1e-3, 1., angle) / 2)
    scale = fnp.where(angle <= 1e-3, small, large)
    if degrees:
        scale = fnp.rad2deg(scale)
    return scale[..., None] * q[..., :3]


def _from_mrp(mrp: Any) -> Any:
    squared_plus_1 = fnp.sum(mrp * mrp, axis=-1)[..., None] + 1
    return fnp.concatenate([2 * mrp[..., :3], 2 - squared_plus_1], axis=-1) / squared_plus_1


def _as_mrp(q: Any) -> Any:
    sign = fnp.where(q[..., 3:] < 0, -1., 1.)
    return sign * q[..., :3] / (1. + sign * q[..., 3:])


def _canonical(q: Any) -> Any:
    """``q`` or ``-q``, whichever has ``w > 0`` (ties: the first nonzero of x, y, z positive)."""
    neg, zero = q < 0, q == 0
    flip = (neg[..., 3] | (zero[..., 3] & neg[..., 0]) | (zero[..., 3] & zero[..., 0] & neg[..., 1])
            | (zero[..., 3] & zero[..., 0] & zero[..., 1] & neg[..., 2]))
    return fnp.where(flip[..., None], -q, q)


def _elementary(axis: int, angle: Any) -> Any:
    half = angle / 2.
    parts = [fnp.zeros_like(angle)] * 3 + [fnp.cos(half)]
    parts[axis] = fnp.sin(half)
    return fnp.stack(parts, axis=-1)


def _check_seq(seq: str, max_axes: int = 3) -> bool:
    """Validate an Euler sequence; ``True`` when intrinsic (upper case)."""
    intrinsic = re.match(r"^[XYZ]{1,3}$", seq) is not None
    extrinsic = re.match(r"^[xyz]{1,3}$", seq) is not None
    if not (intrinsic or extrinsic):
        raise ValueError(f"Expected axes from `seq` to be from ['x', 'y', 'z'] or ['X', 'Y', 'Z'], got {seq}")
    if any(seq[i] == seq[i + 1] for i in range(len(seq) - 1)):
        raise ValueError(f"Expected consecutive axes to be different, got {seq}")
    return intrinsic


def _euler_from_quat(q: Any, axes: list[int], extrinsic: bool, degrees: bool) -> Any:
    """The angles of ``axes`` (three, consecutive ones different) for ``q`` (Bernardes and Viollet's
    direct method, as SciPy and JAX); a gimbal-locked rotation puts all of it in one angle."""
    first, third = (0, 2) if extrinsic else (2, 0)
    i, j, k = axes if extrinsic else axes[::-1]
    symmetric = i == k
    if symmetric:
        k = 3 - i - j
    sign = (i - j) * (j - k) * (k - i) // 2
    if symmetric:
        a, b, c, d = q[..., 3], q[..., i], q[..., j], q[..., k] * sign
    else:
        a, b = q[..., 3] - q[..., j], q[..., i] + q[..., k] * sign
        c, d = q[..., j] + q[..., 3], q[..., k] * sign - q[..., i]
    middle = 2 * fnp.arctan2(fnp.hypot(c, d), fnp.hypot(a, b))
    eps = 1e-7
    case = fnp.where(fnp.abs(middle) <= eps, 1, fnp.where(fnp.abs(middle - np.pi) <= eps, 2, 0))
    half_sum, half_diff = fnp.arctan2(b, a), fnp.arctan2(d, c)
    angles = [fnp.where(case == 1, 2 * half_sum, 2 * half_diff * (-1 if extrinsic else 1)), middle,
              fnp.zeros_like(middle)]
    angles[first] = fnp.where(case == 0, half_sum - half_diff, angles[first])
    angles[third] = fnp.where(case == 0, half_sum + half_diff, angles[third])
    if not symmetric:
        angles[third] = angles[third] * sign
        angles[1] = angles[1] - np.pi / 2
    out = (fnp.stack(angles, axis=-1) + np.pi) % (2 * np.pi) - np.pi
    return fnp.rad2deg(out) if degrees else out


# --- the classes ---------------------------------------------------------------------------------

class Rotation(typing.NamedTuple):
    """A rotation (or a stack of them) in three dimensions, JAX's
    ``jax.scipy.spatial.transform.Rotation`` (SciPy's ``Rotation``), held as unit quaternions
    ``quat`` (scalar last). Compose with ``*`` (``(p * q).apply(v) == p.apply(q.apply(v))``)."""
    quat: Any

    @classmethod
    def concatenate(cls, rotations: Sequence["Rotation"]) -> "Rotation":
        """``Rotation.concatenate(rotations)``: the stacks (or single rotations) one after another."""
        return cls(fnp.concatenate([fnp.atleast_2d(r.quat) for r in rotations]))

    @classmethod
    def from_euler(cls, seq: str, angles: Any, degrees: bool = False) -> "Rotation":
        """``Rotation.from_euler(seq, angles, degrees=False)``: up to three elementary rotations,
        about extrinsic (``"xyz"``, fixed) or intrinsic (``"XYZ"``, moving) axes; ``angles`` has
        ``len(seq)`` entries on its last axis (a scalar for one axis)."""
        if not 1 <= len(seq) <= 3:
            raise ValueError(f"Expected axis specification to be a non-empty string of upto 3 characters, got {seq}")
        intrinsic = _check_seq(seq)
        angles = fnp.atleast_1d(fnp.asarray(angles))
        if not fnp.issubdtype(angles.dtype, fnp.inexact):
            angles = angles.astype(fnp.result_type(angles, float))
        if angles.shape[-1] != len(seq):
            raise ValueError(f"from_euler: angles must have {len(seq)} entries on the last axis (one per axis "
                             f"of {seq!r}), got shape {angles.shape}")
        if degrees:
            angles = fnp.deg2rad(angles)
        axes = [_AXIS[a] for a in seq.lower()]
        result = _elementary(axes[0], angles[..., 0])
        for n in range(1, len(axes)):
            q = _elementary(axes[n], angles[..., n])
            result = _compose(result, q) if intrinsic else _compose(q, result)
        return cls(result)

    @classmethod
    def from_matrix(cls, matrix: Any) -> "Rotation":
        """``Rotation.from_matrix(matrix)``: from rotation matrices ``(..., 3, 3)`` (the nearest
        rotation for a slightly non-orthogonal one)."""
        return cls(_from_matrix(_float(matrix)))

    @classmethod
    def from_mrp(cls, mrp: Any) -> "Rotation":
        """``Rotation.from_mrp(mrp)``: from modified Rodrigues parameters ``(..., 3)``."""
        return cls(_from_mrp(_float(mrp)))

    @classmethod
    def from_quat(cls, quat: Any, *, scalar_first: bool = False) -> "Rotation":
        """``Rotation.from_quat(quat)``: from quaternions ``(..., 4)``, ``(x, y, z, w)`` (``(w, x, y,
        z)`` with ``scalar_first``, as SciPy), normalized."""
        quat = _float(quat)
        if scalar_first:
            quat = fnp.roll(quat, -1, axis=-1)
        return cls(_normalize(quat))

    @classmethod
    def from_rotvec(cls, rotvec: Any, degrees: bool = False) -> "Rotation":
        """``Rotation.from_rotvec(rotvec, degrees=False)``: from rotation vectors ``(..., 3)``
        (axis times angle)."""
        return cls(_from_rotvec(_float(rotvec), degrees))

    @classmethod
    def identity(cls, num: int | None = None, dtype: Any = float) -> "Rotation":
        """``Rotation.identity(num=None, dtype=float)``: the identity (a stack of ``num`` of them;
        JAX allows only ``num=None``)."""
        quat = fnp.array([0., 0., 0., 1.], dtype=fnp.result_type(dtype))
        return cls(quat if num is None else fnp.tile(quat, (int(num), 1)))

    @classmethod
    def random(cls, random_key: Any, num: int | None = None) -> "Rotation":
        """``Rotation.random(random_key, num=None)``: rotations uniformly distributed (normalized
        Gaussian quaternions), from an ``fgrad.random`` key. (JAX declares it but raises.)"""
        shape = (4,) if num is None else (int(num), 4)
        return cls.from_quat(frandom.normal(random_key, shape))

    def __getitem__(self, indexer: Any) -> "Rotation":
        if self.single:
            raise TypeError("Single rotation is not subscriptable.")
        return Rotation(self.quat[indexer])

    def __len__(self) -> int:
        if self.single:
            raise TypeError("Single rotation has no len().")
        return self.quat.shape[0]

    def __mul__(self, other: "Rotation") -> "Rotation":
        return Rotation.from_quat(_compose(self.quat, other.quat))

    def apply(self, vectors: Any, inverse: bool = False) -> Any:
        """``r.apply(vectors, inverse=False)``: rotate vectors ``(..., 3)`` (broadcast against the
        rotations); ``inverse`` applies the inverse rotation."""
        matrix = self.as_matrix()
        if inverse:
            matrix = fnp.swapaxes(matrix, -1, -2)
        return fnp.matmul(matrix, _float(vectors)[..., None])[..., 0]

    def as_euler(self, seq: str, degrees: bool = False) -> Any:
        """``r.as_euler(seq, degrees=False)``: angles ``(..., 3)`` of a three-axis sequence (as in
        ``from_euler``); the middle angle is in ``[0, pi]`` (symmetric) or ``[-pi/2, pi/2]``."""
        if len(seq) != 3:
            raise ValueError(f"Expected 3 axes, got {seq}.")
        intrinsic = _check_seq(seq)
        return _euler_from_quat(self.quat, [_AXIS[a] for a in seq.lower()], not intrinsic, degrees)

    def as_matrix(self) -> Any:
        """``r.as_matrix()``: rotation matrices ``(..., 3, 3)``."""
        return _as_matrix(self.quat)

    def as_mrp(self) -> Any:
        """``r.as_mrp()``: modified Rodrigues parameters ``(..., 3)`` (norm at most 1)."""
        return _as_mrp(self.quat)

    def as_rotvec(self, degrees: bool = False) -> Any:
        """``r.as_rotvec(degrees=False)``: rotation vectors ``(..., 3)`` (angle in ``[0, pi]``)."""
        return _as_rotvec(self.quat, degrees)

    def as_quat(self, canonical: bool = False, scalar_first: bool = False) -> Any:
        """``r.as_quat(canonical=False, scalar_first=False)``: the quaternions; ``canonical`` picks
        the sign with ``w >= 0``; ``scalar_first`` orders them ``(w, x, y, z)``."""
        quat = _canonical(self.quat) if canonical else self.quat
        return fnp.roll(quat, 1, axis=-1) if scalar_first else quat

    def inv(self) -> "Rotation":
        """``r.inv()``: the inverse rotation(s)."""
        return Rotation(self.quat * fnp.array([-1, -1, -1, 1], dtype=self.quat.dtype))

    def magnitude(self) -> Any:
        """``r.magnitude()``: the rotation angle(s) in radians, in ``[0, pi]``."""
        return 2. * fnp.arctan2(_norm(self.quat[..., :3]), fnp.abs(self.quat[..., 3]))

    def mean(self, weights: Any = None) -> "Rotation":
        """``r.mean(weights=None)``: the (weighted) chordal L2 mean of a stack of rotations: the
        dominant eigenvector of ``sum_i w_i q_i q_i^T``."""
        n = self.quat.shape[0]
        w = fnp.ones(n, dtype=self.quat.dtype) if weights is None else fnp.asarray(weights, dtype=self.quat.dtype)
        if w.ndim != 1:
            raise ValueError(f"Expected `weights` to be 1 dimensional, got shape {w.shape}.")
        if w.shape[0] != len(self):
            raise ValueError("Expected `weights` to have number of values equal to number of rotations, got "
                             f"{w.shape[0]} values and {len(self)} rotations.")
        K = fnp.dot(w[None, :] * self.quat.T, self.quat)
        return Rotation(fnp.linalg.eigh(K)[1][:, -1])

    @property
    def single(self) -> bool:
        """Whether this is one rotation (``quat`` of shape ``(4,)``) rather than a stack."""
        return self.quat.ndim == 1


def _float(x: Any) -> Any:
    x = fnp.asarray(x)
    return x if fnp.issubdtype(x.dtype, fnp.inexact) else x.astype(fnp.result_type(x, float))


class Slerp(typing.NamedTuple):
    """Spherical linear interpolation between key rotations at key times, JAX's
    ``jax.scipy.spatial.transform.Slerp``: build with ``Slerp.init(times, rotations)``, call with
    times. A pytree (``jit``/``vmap``/``grad`` pass through it)."""
    times: Any
    timedelta: Any
    rotations: Rotation
    rotvecs: Any

    @classmethod
    def init(cls, times: Any, rotations: Rotation) -> "Slerp":
        """``Slerp.init(times, rotations)``: increasing key ``times`` (1-d) and as many key rotations
        (at least two)."""
        if not isinstance(rotations, Rotation):
            raise TypeError("`rotations` must be a `Rotation` instance.")
        if rotations.single or len(rotations) == 1:
            raise ValueError("`rotations` must be a sequence of at least 2 rotations.")
        times = fnp.asarray(times, dtype=rotations.quat.dtype)
        if times.ndim != 1:
            raise ValueError(f"Expected times to be specified in a 1 dimensional array, got {times.ndim} dimensions.")
        if times.shape[0] != len(rotations):
            raise ValueError("Expected number of rotations to be equal to number of timestamps given, got "
                             f"{len(rotations)} rotations and {times.shape[0]} timestamps.")
        starts = Rotation(rotations.quat[:-1])
        steps = (starts.inv() * Rotation(rotations.quat[1:])).as_rotvec()
        return cls(times=times, timedelta=fnp.diff(times), rotations=starts, rotvecs=steps)

    def __call__(self, times: Any) -> Rotation:
        """The interpolated rotation(s) at ``times`` (a scalar gives a single rotation)."""
        t = fnp.asarray(times, dtype=self.times.dtype)
        if t.ndim > 1:
            raise ValueError("`times` must be at most 1-dimensional.")
        single = t.ndim == 0
        t = fnp.atleast_1d(t)
        index = fnp.maximum(fnp.searchsorted(self.times, t) - 1, 0)
        alpha = (t - self.times[index]) / self.timedelta[index]
        result = self.rotations[index] * Rotation.from_rotvec(self.rotvecs[index] * alpha[:, None])
        return result[0] if single else result
