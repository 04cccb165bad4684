"""Records JAX 0.10.2's lax.conv_transpose for tests/ops/test_conv_transpose.py into
tests/ops/data/jax_conv_transpose.npz (run with a Python that has JAX:
python scripts/record_jax_conv_transpose.py). Not a test; fgrad and its tests never import JAX."""
import json
import pathlib

import jax
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(7)
#: (lhs shape, rhs shape, strides, padding, rhs_dilation, dimension_numbers, transpose_kernel)
CASES = [
    ((2, 5, 5, 3), (3, 3, 3, 4), (2, 2), "SAME", None, None, False),
    ((2, 5, 5, 3), (3, 3, 3, 4), (2, 2), "VALID", None, None, False),
    ((1, 4, 6, 2), (2, 3, 2, 3), (1, 3), "SAME", (2, 1), None, False),
    ((1, 4, 4, 2), (3, 3, 5, 2), (2, 2), "SAME", None, None, True),
    ((1, 7, 2), (4, 2, 3), (3,), "VALID", None, None, False),
    ((1, 7, 2), (4, 2, 3), (2,), [(1, 2)], None, None, False),
    ((2, 3, 4, 4), (5, 3, 3, 3), (2, 2), "SAME", None, ("NCHW", "OIHW", "NCHW"), False),
    ((2, 3, 4, 4), (5, 3, 2, 2), (2, 1), "VALID", None, ("NCHW", "IOHW", "NCHW"), True),
    ((1, 3, 3, 3, 1), (2, 2, 2, 1, 2), (2, 2, 1), "SAME", None, None, False),
    ((3, 4), (4, 5), (), "VALID", None, None, False),
]
out, meta = {}, []
for k, (ls, rs, strides, padding, rd, dn, tk) in enumerate(CASES):
    lhs, rhs = rng.standard_normal(ls), rng.standard_normal(rs)
    y = lax.conv_transpose(lhs, rhs, strides, padding, rhs_dilation=rd, dimension_numbers=dn, transpose_kernel=tk)
    out[f"lhs{k}"], out[f"rhs{k}"], out[f"out{k}"] = lhs, rhs, np.asarray(y)
    meta.append([list(strides), padding if isinstance(padding, str) else [list(p) for p in padding],
                 None if rd is None else list(rd), None if dn is None else list(dn), tk])
out["meta"] = np.array(json.dumps(meta))
path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "ops" / "data" / "jax_conv_transpose.npz"
np.savez(path, **out)
print("wrote", path, len(CASES), "cases")
