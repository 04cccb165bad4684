"""Record JAX 0.10.2's answers for fgrad's complex-number tests into
tests/numpy/data/jax_complex.npz. Run with the JAX oracle environment:

    /work/jaxenv/bin/python scripts/record_jax_complex.py

Recorded: the promotion table over every dtype fgrad has plus the weak Python int, float and
complex types (``result_type`` with 64-bit enabled and disabled, the result's weakness too),
and gradients/Jacobians of complex functions (``grad``, ``holomorphic=True`` ``grad``/``jacfwd``/
``jacrev``, ``vjp``) at fixed points, in complex128/float64; gradients through ``jnp.fft``.
"""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

NAMES = ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "bfloat16",
         "float16", "float32", "float64", "complex64", "complex128", "int", "float", "complex"]
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "numpy" / "data" / "jax_complex.npz"


def _operand(name):
    """A dtype name, or one of the weak Python types (JAX treats ``int``/``float``/``complex`` as weak)."""
    return {"int": int, "float": float, "complex": complex}.get(name, None) or jnp.dtype(name)


def promotion_table(x64: bool) -> np.ndarray:
    """rows x cols of 'dtype' or 'dtype*' (weak) strings."""
    jax.config.update("jax_enable_x64", x64)
    table = []
    for a in NAMES:
        row = []
        for b in NAMES:
            dtype, weak = jax.dtypes.result_type(_operand(a), _operand(b), return_weak_type_flag=True)
            row.append(np.dtype(dtype).name + ("*" if weak else ""))
        table.append(row)
    return np.array(table)


# --- derivatives (64-bit) -------------------------------------------------------------------------

Z = np.array([1 + 2j, -0.5 + 0.25j, 3 - 1j])
REAL_FUNCS = {   # real-valued functions of complex z: grad (JAX's conjugate convention)
    "abs2": lambda z: jnp.sum(jnp.abs(z) ** 2),
    "abs": lambda z: jnp.sum(jnp.abs(z)),
    "real_exp": lambda z: jnp.sum(jnp.real(jnp.exp(z))),
    "imag_log": lambda z: jnp.sum(jnp.imag(jnp.log(z))),
    "real_sq_conj": lambda z: jnp.sum(jnp.real(z * jnp.conj(z) + z ** 3)),
    "imag_sin_mul": lambda z: jnp.sum(jnp.imag(jnp.sin(z) * (2 - 1j))),
    "abs_sqrt_div": lambda z: jnp.sum(jnp.abs(jnp.sqrt(z) / (z + 2))),
    "real_tanh_cosh": lambda z: jnp.sum(jnp.real(jnp.tanh(z) + jnp.cosh(z) * jnp.sinh(z) - jnp.tan(z))),
    "angle": lambda z: jnp.sum(jnp.angle(z)),
    "real_expm1_log1p": lambda z: jnp.sum(jnp.real(jnp.expm1(z) * jnp.log1p(z))),
    "imag_pow": lambda z: jnp.sum(jnp.imag(z ** (0.5 + 0.25j))),
    "real_dot": lambda z: jnp.real(jnp.dot(z, z[::-1] * 1j)),
    "real_cumsum_prod": lambda z: jnp.real(jnp.sum(jnp.cumsum(z)) * jnp.prod(z)),
    "real_mean_where": lambda z: jnp.real(jnp.mean(jnp.where(jnp.abs(z) > 1.5, z, -z))),
}
HOLOMORPHIC = {  # complex-valued, holomorphic functions of z (elementwise)
    "square": lambda z: z * z,
    "exp_sin": lambda z: jnp.exp(z) * jnp.sin(z),
    "log_div": lambda z: jnp.log(z) / (z + 1j),
    "sqrt_pow": lambda z: jnp.sqrt(z) + z ** 3,
    "tanh_cos": lambda z: jnp.tanh(z) - jnp.cos(z),
}


def derivative_records() -> dict:
    jax.config.update("jax_enable_x64", True)
    z = jnp.asarray(Z)
    out = {"Z": Z}
    for name, f in REAL_FUNCS.items():
        out[f"grad_{name}"] = np.asarray(jax.grad(f)(z))
        out[f"value_{name}"] = np.asarray(f(z))
    for name, f in HOLOMORPHIC.items():
        out[f"holo_value_{name}"] = np.asarray(f(z))
        out[f"holo_grad_{name}"] = np.asarray(jax.grad(lambda w: jnp.sum(f(w)), holomorphic=True)(z))
        out[f"holo_jacfwd_{name}"] = np.asarray(jax.jacfwd(f, holomorphic=True)(z))
        out[f"holo_jacrev_{name}"] = np.asarray(jax.jacrev(f, holomorphic=True)(z))
    # real -> complex -> real, and vjp of a non-holomorphic complex-valued function
    x = jnp.array([0.5, -1.25, 2.0])
    out["grad_real_to_complex"] = np.asarray(jax.grad(lambda x: jnp.sum(jnp.abs(jax.lax.complex(x, x ** 2) * (1 + 1j))))(x))
    ct = jnp.asarray(np.array([1 - 1j, 2 + 0.5j, -1j]))
    _, pull = jax.vjp(lambda z: jnp.conj(z) * z + jnp.real(z) * 1j, z)
    out["vjp_nonholo"] = np.asarray(pull(ct)[0])
    out["vjp_ct"] = np.asarray(ct)
    _, jvp_out = jax.jvp(lambda z: jnp.conj(z) * z + jnp.real(z) * 1j, (z,), (ct,))
    out["jvp_nonholo"] = np.asarray(jvp_out)
    return out


FFT_X = np.linspace(-1.0, 2.0, 12).reshape(3, 4) ** 2 - 0.5
FFT_W = np.cos(np.arange(12.0)).reshape(3, 4)
FFT_FUNCS = {    # real-valued functions through every transform (64-bit)
    "fft": lambda z: jnp.sum(jnp.abs(jnp.fft.fft(z, axis=0)) ** 2 * FFT_W),
    "ifft": lambda z: jnp.sum(jnp.real(jnp.fft.ifft(z, n=6) * jnp.conj(z[:, :1]))),
    "rfft": lambda z: jnp.sum(jnp.abs(jnp.fft.rfft(jnp.real(z) * jnp.imag(z), n=5)) ** 2),
    "irfft": lambda z: jnp.sum(jnp.fft.irfft(z[:, :3], n=4) * FFT_W),
    "irfft_odd": lambda z: jnp.sum(jnp.fft.irfft(z, n=7) ** 2),
    "fftn_ortho": lambda z: jnp.sum(jnp.imag(jnp.fft.fftn(z, norm="ortho")) * FFT_W),
    "rfft2": lambda z: jnp.sum(jnp.abs(jnp.fft.rfft2(jnp.real(z))) * jnp.fft.rfftfreq(4)),
    "irfftn_forward": lambda z: jnp.sum(jnp.sin(jnp.fft.irfftn(z, s=(3, 5), norm="forward"))),
    "hfft": lambda z: jnp.sum(jnp.fft.hfft(z) ** 2),
    "shift": lambda z: jnp.sum(jnp.real(jnp.fft.fftshift(jnp.fft.ifft2(z)) * FFT_W)),
}


def fft_records() -> dict:
    jax.config.update("jax_enable_x64", True)
    z = jnp.asarray(FFT_X + 1j * FFT_W)
    out = {"FFT_Z": np.asarray(z)}
    for name, f in FFT_FUNCS.items():
        out[f"fft_value_{name}"] = np.asarray(f(z))
        out[f"fft_grad_{name}"] = np.asarray(jax.grad(f)(z))
    return out


EIG_A = np.array([[0.5, -1.2, 0.3, 2.0], [1.1, 0.4, -0.7, 0.2], [-0.3, 0.9, 1.5, -1.0], [0.8, 0.1, 0.6, -0.4]])
EIG_FUNCS = {   # order-independent functions of the eigenvalues (64-bit)
    "real2_imag": lambda a: jnp.sum(jnp.real(jnp.linalg.eigvals(a)) ** 2 + jnp.imag(jnp.linalg.eigvals(a))),
    "abs_prod": lambda a: jnp.abs(jnp.prod(jnp.linalg.eigvals(a) + 1j)),
    "exp_sum": lambda a: jnp.real(jnp.sum(jnp.exp(jnp.linalg.eigvals(a) * (0.5 - 0.25j)))),
}


def eig_records() -> dict:
    jax.config.update("jax_enable_x64", True)
    out = {"EIG_A": EIG_A, "EIG_W": np.sort_complex(np.asarray(jnp.linalg.eigvals(EIG_A)))}
    for name, f in EIG_FUNCS.items():
        out[f"eig_value_{name}"] = np.asarray(f(EIG_A))
        out[f"eig_grad_{name}"] = np.asarray(jax.grad(f)(EIG_A))
    za = EIG_A + 1j * EIG_A[::-1]
    out["EIG_ZW"] = np.sort_complex(np.asarray(jnp.linalg.eigvals(za)))
    out["eig_grad_complex"] = np.asarray(jax.grad(lambda z: jnp.sum(jnp.abs(jnp.linalg.eigvals(z)) ** 2))(za))
    return out


UNARY_NAMES = ["exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "abs", "angle",
               "sign", "reciprocal", "square", "log2", "log10", "exp2", "arcsin", "arccos", "arctan", "arcsinh",
               "arccosh", "arctanh"]


def unary_points() -> np.ndarray:
    """complex64 points: random magnitudes 1e-8..1e3 at all angles, near the unit circle, on the
    axes, and signed zeros."""
    rng = np.random.default_rng(17)
    mag = np.exp(rng.uniform(np.log(1e-8), np.log(1e3), 160))
    ring = 1 + rng.uniform(-1e-3, 1e-3, 24)
    angles = rng.uniform(-np.pi, np.pi, 184)
    z = np.concatenate([mag, ring]) * np.exp(1j * angles)
    axes = np.array([0.5, -0.5, 2, -2, 0.5j, -0.5j, 3j, -3j, complex(0.0, -0.0), complex(-0.0, 0.0), 1e-20, 1e-20j])
    return np.concatenate([z, axes]).astype(np.complex64)


def unary_records() -> dict:
    jax.config.update("jax_enable_x64", False)
    z = unary_points()
    out = {"UNARY_Z": z}
    for name in UNARY_NAMES:
        out[f"unary_{name}"] = np.asarray(getattr(jnp, name)(jnp.asarray(z)))
    return out


def main():
    records = {"names": np.array(NAMES), "promote_x64": promotion_table(True),
               "promote_x32": promotion_table(False)}
    records.update(derivative_records())
    records.update(fft_records())
    records.update(eig_records())
    records.update(unary_records())
    jax.config.update("jax_enable_x64", False)
    records["normal_c64"] = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (3, 2), jnp.complex64))
    jax.config.update("jax_enable_x64", True)
    records["normal_c128"] = np.asarray(jax.random.normal(jax.random.PRNGKey(7), (4,), jnp.complex128))
    np.savez(OUT, **records)
    print(f"wrote {len(records)} arrays to {OUT}")


if __name__ == "__main__":
    main()
