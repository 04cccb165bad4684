"""``jax.nn.dot_product_attention`` as a function: scaled dot-product attention over
(batch, length, heads, head_dim) arrays, with grouped key/value heads, a bias, a boolean mask,
causal and local-window masking and per-example sequence lengths."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from fgrad import numpy as fnp
from fgrad.nn.functional import softmax

__all__ = ["dot_product_attention"]


def dot_product_attention(query: Any, key: Any, value: Any, bias: Any = None, mask: Any = None, *,
                          scale: float | None = None, is_causal: bool = False, query_seq_lengths: Any = None,
                          key_value_seq_lengths: Any = None, local_window_size: int | tuple[int, int] | None = None,
                          implementation: str | None = None, return_residual: bool = False) -> Any:
    """``jax.nn.dot_product_attention(query, key, value, bias=None, mask=None, *, scale=None,
    is_causal=False, query_seq_lengths=None, key_value_seq_lengths=None, local_window_size=None,
    implementation=None)``: ``softmax(scale * q k^T + bias) v`` per head.

    ``query`` is (B, T, N, H) (or (T, N, H)); ``key`` and ``value`` are (B, S, K, H) with ``N`` a
    multiple of ``K`` (grouped-query attention). ``mask`` is boolean, True = attend, broadcast to
    (B, N, T, S); ``is_causal``, ``local_window_size`` (left, right) and the sequence lengths
    mask further. A query with nothing to attend to averages the values (its scores are the
    dtype's lowest finite value, as JAX's 'xla' implementation does). ``implementation='cudnn'``
    raises (fgrad has its own kernels); ``return_residual=True`` also returns the logsumexp of
    the scores, shaped (B, T, N).
    """
    if implementation not in (None, "xla"):
        raise ValueError(f"dot_product_attention: implementation={implementation!r} is not available in fgrad; "
                         "pass None (fgrad compiles attention itself)")
    query, key, value = fnp.asarray(query), fnp.asarray(key), fnp.asarray(value)
    unbatched = query.ndim == 3
    if unbatched:
        query, key, value = query[None], key[None], value[None]
    _check_shapes(query, key, value)
    b, t, n, h = query.shape
    s, k_heads = key.shape[1], key.shape[2]
    scale = 1.0 / math.sqrt(h) if scale is None else scale
    q = fnp.reshape(query, (b, t, k_heads, n // k_heads, h))                   # groups share a key head
    scores = fnp.einsum("btkgh,bskh->bkgts", q, key) * scale
    scores = fnp.reshape(scores, (b, n, t, s)).astype(fnp.float32 if query.dtype == fnp.float16 else query.dtype)
    if bias is not None:
        scores = scores + _to_heads(fnp.asarray(bias), (b, n, t, s), "bias", unbatched)
    allowed = _allowed(mask, is_causal, local_window_size, query_seq_lengths, key_value_seq_lengths,
                       (b, n, t, s), unbatched)
    if allowed is not None:
        scores = fnp.where(allowed, scores, fnp.finfo(scores.dtype).min)
    weights = softmax(scores, axis=-1).astype(query.dtype)
    weights = fnp.reshape(weights, (b, k_heads, n // k_heads, t, s))
    out = fnp.reshape(fnp.einsum("bkgts,bskh->btkgh", weights, value), (b, t, n, h))
    if query_seq_lengths is not None:          # padded queries give zeros, as JAX's
        valid = fnp.arange(t)[None, :] < fnp.asarray(query_seq_lengths)[:, None]
        out = fnp.where(valid[:, :, None, None], out, 0)
    out = out[0] if unbatched else out
    if return_residual:
        lse = fnp.moveaxis(fnp.log(fnp.sum(fnp.exp(scores - fnp.max(scores, -1, keepdims=True)), -1))
                           + fnp.max(scores, -1), 1, 2)
        return out, (lse[0] if unbatched else lse)
    return out


def _check_shapes(query: Any, key: Any, value: Any) -> None:
    if query.ndim != 4 or key.ndim != 4 or value.shape != key.shape:
        raise ValueError(f"dot_product_attention: query must be (B, T, N, H) or (T, N, H) and key/value alike, "
                         f"key and value of one shape; got {query.shape}, {key.shape}, {value.shape}")
    if query.shape[0] != key.shape[0] or query.shape[3] != key.shape[3]:
        raise ValueError(f"dot_product_attention: query and key must agree on the batch and head_dim; "
                         f"got {query.shape} and {key.shape}")
    if query.shape[2] % key.shape[2]:
        raise ValueError(f"dot_product_attention: the query's {query.shape[2]} heads must be a multiple of the "
                         f"key's {key.shape[2]} heads")


def _to_heads(x: Any, shape: tuple, name: str, unbatched: bool) -> Any:
    """``x`` (given as (B, N, T, S), or (N, T, S) for unbatched inputs, broadcastable) at ``shape``."""
    if unbatched and x.ndim == 3:
        x = x[None]
    try:
        return fnp.broadcast_to(x, shape)
    except ValueError:
        raise ValueError(f"dot_product_attention: {name} of shape {x.shape} does not broadcast to (B, N, T, S) = "
                         f"{shape}") from None


def _allowed(mask, is_causal, window, q_lengths, kv_lengths, shape, unbatched) -> Any:
    """The 'may attend' boolean array (B, N, T, S), or None when everything may."""
    b, n, t, s = shape
    allowed = None
    if mask is not None:
        mask = fnp.asarray(mask)
        if mask.dtype != fnp.bool_:
            raise TypeError(f"dot_product_attention: mask must be boolean (True = attend), got {mask.dtype}")
        allowed = _to_heads(mask, shape, "mask", unbatched)
    rows, cols = np.arange(t)[:, None], np.arange(s)[None, :]
    static = np.ones((t, s), bool)
    if is_causal:
        static &= cols <= rows
    if window is not None:
        left, right = (window, window) if isinstance(window, int) else window
        static &= (cols >= rows - left) & (cols <= rows + right)
    if not static.all():
        allowed = fnp.asarray(static) if allowed is None else allowed & static
    for lengths, axis in ((q_lengths, 2), (kv_lengths, 3)):
        if lengths is not None:
            size = shape[axis]
            valid = fnp.arange(size)[None, :] < fnp.asarray(lengths)[:, None]           # (B, size)
            valid = valid[:, None, :, None] if axis == 2 else valid[:, None, None, :]
            allowed = valid if allowed is None else allowed & valid
    return None if allowed is None else fnp.broadcast_to(allowed, shape)
