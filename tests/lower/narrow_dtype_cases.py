"""Programs on int8, int16, uint16 and bfloat16 arrays whose JAX results are recorded in
``test_narrow_dtypes.py`` (``JAX_RESULTS``). Each takes the NumPy namespace and lax module
(``jax.numpy, jax.lax`` or ``fgrad.numpy, fgrad.lax``) and returns one array. This module
imports only NumPy and ml_dtypes, so the recording script can run it under JAX:

    PYTHONPATH=. /work/jaxenv/bin/python tests/lower/narrow_dtype_cases.py   # prints JAX_RESULTS
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

INT_EDGES = {"int8": [-128, -127, -100, -3, -1, 0, 1, 2, 5, 100, 126, 127],
             "int16": [-32768, -32767, -300, -3, -1, 0, 1, 2, 5, 300, 32766, 32767],
             "uint16": [0, 1, 2, 3, 5, 255, 256, 300, 32767, 32768, 65534, 65535]}
SHIFTS = [-1, 0, 1, 3, 7, 8, 9, 15, 16, 17, 2, 100]
FLOAT_EDGES = [1e30, -1e30, 300.5, -300.5, float("nan"), 127.5, -128.7, 65535.9, 65536.0, -0.9, 32767.5,
               -32768.9, 2.5, 1e-30, float("inf"), float("-inf")]
BF16_VALUES = [0.0, -0.0, 1.0, -1.5, 3.140625, 100.5, -7.25, 1e-3, 65280.0, 3.0e38, float("nan"), float("inf")]


def ints(np_, name):
    return np_.asarray(np.array(INT_EDGES[name], name))


def shifts(np_, name):
    return np_.asarray(np.array(SHIFTS, name) if name != "uint16" else np.array(SHIFTS, np.int64).astype(name))


def bf16(np_):
    return np_.asarray(np.array(BF16_VALUES, np.float32).astype(ml_dtypes.bfloat16))


def _int_cases():
    cases = {}
    for t in INT_EDGES:
        cases.update({
            f"{t} + {t}": lambda np_, lax_, t=t: ints(np_, t) + ints(np_, t),
            f"{t} * 100 (weak int)": lambda np_, lax_, t=t: ints(np_, t) * 100,
            f"{t} * reversed": lambda np_, lax_, t=t: ints(np_, t) * ints(np_, t)[::-1],
            f"{t} - 7": lambda np_, lax_, t=t: ints(np_, t) - 7,
            f"-{t}": lambda np_, lax_, t=t: -ints(np_, t),
            f"abs {t}": lambda np_, lax_, t=t: np_.abs(ints(np_, t)),
            f"sign {t}": lambda np_, lax_, t=t: np_.sign(ints(np_, t)),
            f"{t} // shifts": lambda np_, lax_, t=t: ints(np_, t) // shifts(np_, t),
            f"{t} % shifts": lambda np_, lax_, t=t: ints(np_, t) % shifts(np_, t),
            f"lax.div {t}": lambda np_, lax_, t=t: lax_.div(ints(np_, t), shifts(np_, t)),
            f"lax.rem {t}": lambda np_, lax_, t=t: lax_.rem(ints(np_, t), shifts(np_, t)),
            f"{t} ** 3": lambda np_, lax_, t=t: lax_.integer_pow(ints(np_, t), 3),
            f"shift_left {t}": lambda np_, lax_, t=t: lax_.shift_left(ints(np_, t), shifts(np_, t)),
            f"right_shift {t}": lambda np_, lax_, t=t: np_.right_shift(ints(np_, t), shifts(np_, t)),
            f"shift_right_logical {t}": lambda np_, lax_, t=t: lax_.shift_right_logical(ints(np_, t), shifts(np_, t)),
            f"~{t}": lambda np_, lax_, t=t: ~ints(np_, t),
            f"{t} & ^ |": lambda np_, lax_, t=t: (ints(np_, t) & shifts(np_, t)) ^ (ints(np_, t) | 6),
            f"max {t}": lambda np_, lax_, t=t: np_.maximum(ints(np_, t), shifts(np_, t)),
            f"{t} < shifts": lambda np_, lax_, t=t: ints(np_, t) < shifts(np_, t),
            f"sum {t}": lambda np_, lax_, t=t: np_.sum(ints(np_, t)),
            f"prod {t}": lambda np_, lax_, t=t: np_.prod(ints(np_, t)[3:7]),
            f"cumsum {t}": lambda np_, lax_, t=t: np_.cumsum(ints(np_, t)),
            f"cumulative_sum {t}": lambda np_, lax_, t=t: np_.cumulative_sum(ints(np_, t)),
            f"mean {t}": lambda np_, lax_, t=t: np_.mean(ints(np_, t)),
            f"max reduce {t}": lambda np_, lax_, t=t: np_.max(ints(np_, t)),
            f"argmax {t}": lambda np_, lax_, t=t: np_.argmax(ints(np_, t) * 3),
            f"sort {t}": lambda np_, lax_, t=t: np_.sort(ints(np_, t) * 7),
            f"argsort {t}": lambda np_, lax_, t=t: np_.argsort(ints(np_, t) * 7, stable=True),
            f"{t} as float32": lambda np_, lax_, t=t: ints(np_, t).astype(np.float32),
            f"{t} as bfloat16": lambda np_, lax_, t=t: ints(np_, t).astype(ml_dtypes.bfloat16),
            f"{t} + 1.5 (weak float)": lambda np_, lax_, t=t: ints(np_, t) + 1.5,
            f"{t} / 3": lambda np_, lax_, t=t: ints(np_, t) / 3,
            f"float32 edges as {t}": lambda np_, lax_, t=t: np_.asarray(np.array(FLOAT_EDGES, np.float32)).astype(t),
            f"bfloat16 as {t}": lambda np_, lax_, t=t: bf16(np_).astype(t),
            f"int32 wraps to {t}": lambda np_, lax_, t=t: np_.asarray(np.array([70000, -70000, 255, 256, -129, 65535], np.int32)).astype(t),
            f"{t} at[] add": lambda np_, lax_, t=t: ints(np_, t).at[np.array([0, 1, 1, 11])].add(ints(np_, t)[:4]),
            f"{t} gather": lambda np_, lax_, t=t: ints(np_, t)[np.array([3, 0, 11, 11])],
        })
    return cases


def _bf16_cases():
    return {
        "bf16 * 3 + 1": lambda np_, lax_: bf16(np_) * 3 + 1,
        "bf16 / 7": lambda np_, lax_: bf16(np_) / 7,
        "bf16 * bf16": lambda np_, lax_: bf16(np_) * bf16(np_)[::-1],
        "exp bf16": lambda np_, lax_: np_.exp(bf16(np_) / 50),
        "tanh bf16": lambda np_, lax_: np_.tanh(bf16(np_)),
        "sqrt bf16": lambda np_, lax_: np_.sqrt(np_.abs(bf16(np_))),
        "floor bf16": lambda np_, lax_: np_.floor(bf16(np_)),
        "max bf16": lambda np_, lax_: np_.maximum(bf16(np_), -bf16(np_)),
        "bf16 < 2": lambda np_, lax_: bf16(np_) < 2,
        "sum bf16": lambda np_, lax_: np_.sum(bf16(np_)[:9]),
        "mean bf16": lambda np_, lax_: np_.mean(bf16(np_)[:9]),
        "cumsum bf16": lambda np_, lax_: np_.cumsum(bf16(np_)[:9]),
        "argmax bf16": lambda np_, lax_: np_.argmax(bf16(np_)[:9]),
        "sort bf16": lambda np_, lax_: np_.sort(bf16(np_)),
        "bf16 @ bf16": lambda np_, lax_: bf16(np_)[:9].reshape(3, 3) @ bf16(np_)[:9].reshape(3, 3),
        "bf16 + float16": lambda np_, lax_: bf16(np_)[:6] + np_.asarray(np.arange(6, dtype=np.float16)),
        "bf16 + int8": lambda np_, lax_: bf16(np_)[:6] + np_.asarray(np.arange(6, dtype=np.int8)),
        "float32 edges as bfloat16": lambda np_, lax_: np_.asarray(np.array(FLOAT_EDGES + [1.00390625, 1.01171875, 3.3895314e38], np.float32)).astype(ml_dtypes.bfloat16),
        "float16 as bfloat16": lambda np_, lax_: np_.asarray(np.array([65504, 6e-8, -2.5, 1.0009765625], np.float16)).astype(ml_dtypes.bfloat16),
        "bfloat16 as float16": lambda np_, lax_: bf16(np_).astype(np.float16),
        "bfloat16 as bool": lambda np_, lax_: bf16(np_).astype(bool),
        "bfloat16 bits": lambda np_, lax_: lax_.bitcast_convert_type(bf16(np_), np.uint16),
        "bits as bfloat16": lambda np_, lax_: lax_.bitcast_convert_type(np_.asarray(np.array([0x3f80, 0x7fc0, 0x8001, 0xff80], np.uint16)), ml_dtypes.bfloat16),
    }


CASES = {**_int_cases(), **_bf16_cases()}


def encode(result) -> tuple:
    """(dtype name, values as Python numbers): floats as float, NaN and infinities as the
    strings 'nan', 'inf', '-inf' (so the table is a Python literal)."""
    a = np.asarray(result)
    if a.dtype.kind in "biu":
        return a.dtype.name, a.tolist()
    values = [(repr(v) if not np.isfinite(v) else v) for v in a.astype(np.float64).reshape(-1).tolist()]
    return a.dtype.name, values if a.ndim else values[0]


if __name__ == "__main__":
    import jax
    jax.config.update("jax_enable_x64", False)
    import jax.numpy as jnp
    print("JAX_RESULTS = {")
    for name, f in CASES.items():
        print(f"    {name!r}: {encode(f(jnp, jax.lax))!r},")
    print("}")
