"""Multi-head scaled dot-product attention as a Module, with ``torch.nn.MultiheadAttention``'s
parameters and initialisation (``in_proj_weight`` (3E, E) Xavier-uniform, ``in_proj_bias`` and
``out_proj.bias`` zeros, ``out_proj`` a ``Linear``), for batch-first inputs (B, T, E)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from fgrad import numpy as fnp
from fgrad import random
from fgrad.nn.functional import softmax
from fgrad.nn.layers import Linear
from fgrad.nn.module import Module


class MultiheadAttention(Module):
    """``softmax(q k^T / sqrt(head_dim)) v`` over ``num_heads`` heads, then ``out_proj``.

    ``attn(query)`` is self-attention; ``attn(query, key, value)`` attends from ``query``
    (B, Tq, E) to ``key``/``value`` (B, Tk, E) (``value`` defaults to ``key``). Unbatched
    (T, E) inputs work too. ``causal=True`` lets position i attend to positions <= i;
    ``mask`` is a boolean array broadcastable to (B, num_heads, Tq, Tk) where **True means
    attend** (JAX/Flax's convention; PyTorch's ``attn_mask`` uses True for *masked*). A row
    with nothing to attend to averages all values (masked scores are ``finfo.min``, not -inf).
    Returns only the output, not the attention weights (PyTorch's ``need_weights=False``).

    >>> attn = MultiheadAttention(128, 4, key=fgrad.random.key(0))   # doctest: +SKIP
    >>> attn(x, causal=True).shape     # x: (16, 128, 128) -> (16, 128, 128)
    """

    static_fields = ("embed_dim", "num_heads")

    def __init__(self, embed_dim: int, num_heads: int, bias: bool = True, *, key: Any):
        if key is None:
            raise TypeError("MultiheadAttention needs an explicit PRNG key: pass key=fgrad.random.key(seed)")
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads}); each head gets embed_dim // num_heads features")
        in_key, out_key = random.split(key)
        bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))  # xavier_uniform on a (3E, E) matrix
        self.in_proj_weight = random.uniform(in_key, (3 * embed_dim, embed_dim), fnp.float32, -bound, bound)
        self.in_proj_bias = fnp.zeros((3 * embed_dim,), fnp.float32) if bias else None
        out_proj = Linear(embed_dim, embed_dim, bias=bias, key=out_key)
        self.out_proj = out_proj.replace(bias=fnp.zeros((embed_dim,), fnp.float32)) if bias else out_proj
        self.embed_dim, self.num_heads = embed_dim, num_heads

    def __call__(self, query: Any, key: Any = None, value: Any = None, *, causal: bool = False,
                 mask: Any = None) -> Any:
        key = query if key is None else key
        value = key if value is None else value
        unbatched = self._check_inputs(query, key, value)
        if unbatched:
            query, key, value = query[None], key[None], value[None]
        q, k, v = self._project_qkv(query, key, value)
        scores = fnp.matmul(q, fnp.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(self.embed_dim // self.num_heads))
        allowed = self._allowed(mask, causal, scores.shape)
        if allowed is not None:
            scores = fnp.where(allowed, scores, float(fnp.finfo(scores.dtype).min))
        heads = fnp.matmul(softmax(scores, axis=-1), v)                  # (B, H, Tq, D)
        batch, _, length, _ = heads.shape
        out = self.out_proj(fnp.reshape(fnp.swapaxes(heads, 1, 2), (batch, length, self.embed_dim)))
        return out[0] if unbatched else out

    def _project_qkv(self, query: Any, key: Any, value: Any) -> tuple[Any, Any, Any]:
        """q, k, v of shape (B, H, T, head_dim); self-attention projects with one matmul."""
        e, w, b = self.embed_dim, self.in_proj_weight, self.in_proj_bias
        if key is query and value is query:
            qkv = fnp.matmul(query, w.T) if b is None else fnp.matmul(query, w.T) + b
            q, k, v = qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]
        else:
            q, k, v = (fnp.matmul(x, w[i * e:(i + 1) * e].T) + (0.0 if b is None else b[i * e:(i + 1) * e])
                       for i, x in enumerate((query, key, value)))
        return self._split_heads(q), self._split_heads(k), self._split_heads(v)

    def _split_heads(self, x: Any) -> Any:
        batch, length, _ = x.shape
        heads = fnp.reshape(x, (batch, length, self.num_heads, self.embed_dim // self.num_heads))
        return fnp.swapaxes(heads, 1, 2)

    def _check_inputs(self, query: Any, key: Any, value: Any) -> bool:
        """Check ranks and sizes; returns whether the inputs are unbatched (T, E)."""
        shapes = {name: tuple(fnp.shape(x)) for name, x in (("query", query), ("key", key), ("value", value))}
        rank = len(shapes["query"])
        for name, shape in shapes.items():
            if len(shape) not in (2, 3) or len(shape) != rank:
                raise ValueError(f"MultiheadAttention: query, key and value must all be (B, T, E) or all "
                                 f"(T, E); got {shapes}")
            if shape[-1] != self.embed_dim:
                raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}): {name} must have last "
                                 f"dimension {self.embed_dim}, got shape {shape}")
        if shapes["key"][:-1] != shapes["value"][:-1] or shapes["key"][:-2] != shapes["query"][:-2]:
            raise ValueError(f"MultiheadAttention: key and value need the same (B, Tk), and query the same "
                             f"batch size; got {shapes}")
        return rank == 2

    def _allowed(self, mask: Any, causal: bool, scores_shape: tuple[int, ...]) -> Any:
        """The boolean 'may attend' array (broadcastable to the scores), or None for all."""
        allowed = None
        if causal:
            q_len, k_len = scores_shape[-2:]
            allowed = fnp.asarray(np.tril(np.ones((q_len, k_len), bool)))
        if mask is None:
            return allowed
        mask = fnp.asarray(mask)
        if mask.dtype != fnp.bool_:
            raise TypeError(f"MultiheadAttention: mask must be boolean (True = attend), got dtype {mask.dtype}; "
                            "for a PyTorch-style mask (True = masked) pass ~mask")
        try:
            broadcast = np.broadcast_shapes(tuple(mask.shape), tuple(scores_shape))
        except ValueError:
            broadcast = None
        if broadcast != tuple(scores_shape):
            raise ValueError(f"MultiheadAttention: mask of shape {tuple(mask.shape)} does not broadcast to "
                             f"(batch, num_heads, Tq, Tk) = {tuple(scores_shape)}")
        return mask if allowed is None else fnp.logical_and(mask, allowed)
