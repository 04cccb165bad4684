"""The scheduler (jaxpr -> kernel IR) through the native jit, against eager evaluation."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import lax, numpy as fnp

RNG = np.random.default_rng(0)


def _arr(*shape):
    return fnp.asarray(RNG.standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("shape,axis", [((4, 32, 26, 26), (0, 2, 3)), ((1, 2, 1, 64), (0, 2, 3)),
                                        ((3, 5, 7), (0,)), ((3, 5, 7), (1,)), ((3, 5, 7), (0, 2)),
                                        ((6, 9), (0, 1))])
def test_reductions_over_outer_and_mixed_axes(shape, axis):
    x = _arr(*shape)
    for f in (fnp.sum, fnp.max, fnp.min):
        got = fgrad.jit(lambda v: f(v, axis=axis))(x)
        np.testing.assert_allclose(np.asarray(got), np.asarray(f(x, axis=axis)), rtol=2e-5, atol=2e-4)


def test_fused_chain_is_one_kernel_and_matches_eager():
    from fgrad.lower import rules  # noqa: F401
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert
    f = lambda x, y: fnp.tanh(x * 2 + 1) * y + fnp.exp(-x)
    x, y = _arr(8, 16), _arr(16)
    program = lower_program(closure_convert(fgrad.make_jaxpr(f)(x, y))[0])
    assert len(program.body) == 1
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(x, y)), np.asarray(f(x, y)), rtol=1e-5, atol=1e-6)


def test_control_flow_lowers_to_native_steps():
    from fgrad.lower import kernel as K, rules  # noqa: F401
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert
    f = lambda x: lax.fori_loop(0, 5, lambda i, c: c * 2 + 1, x)
    x = _arr(3)
    program = lower_program(closure_convert(fgrad.make_jaxpr(f)(x))[0])
    assert any(isinstance(s, K.Loop) for s in program.body)
    np.testing.assert_allclose(np.asarray(fgrad.jit(f)(x)), np.asarray(f(x)), rtol=1e-6)


def test_unlowerable_program_falls_back_to_reference_path(capsys, monkeypatch):
    from fgrad.lower import rules  # noqa: F401
    from fgrad.lower.schedule import lowering_rules
    from fgrad.ops.sort import sort_p
    monkeypatch.delitem(lowering_rules, sort_p)       # a primitive without a lowering
    f = fgrad.jit(lambda x: fnp.sort(x))
    x = _arr(7)
    with fgrad.config.override(debug=1), pytest.warns(fgrad.ReferencePathWarning, match="primitive 'sort'"):
        got = f(x)
    np.testing.assert_array_equal(np.asarray(got), np.sort(np.asarray(x)))
    assert "reference path" in capsys.readouterr().out


@pytest.mark.parametrize("dn", [("NCHW", "OIHW", "NCHW"), ("NHWC", "HWIO", "NHWC")])
def test_conv_weight_gradient_feature_major_layout_matches_eager(dn):
    """Weight gradients (few output positions, many "images") are computed feature-major and
    read back transposed; the result must not depend on it, as a program output or fused."""
    nchw = dn[0] == "NCHW"
    x = _arr(*((6, 5, 9, 9) if nchw else (6, 9, 9, 5)))
    w = _arr(*((7, 5, 3, 3) if nchw else (3, 3, 5, 7)))
    conv = lambda w: lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dn)
    loss = lambda w: fnp.sum(fnp.tanh(conv(w)) ** 2)
    g = fgrad.grad(loss)
    np.testing.assert_allclose(np.asarray(fgrad.jit(g)(w)), np.asarray(g(w)), rtol=2e-4, atol=2e-4)
    step = lambda w: w - 0.1 * g(w)      # the gradient fused into a consumer
    np.testing.assert_allclose(np.asarray(fgrad.jit(step)(w)), np.asarray(step(w)), rtol=2e-4, atol=2e-4)


def _kernel_names(f, *args):
    from fgrad.lower import kernel as K, rules  # noqa: F401
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert
    program = lower_program(closure_convert(fgrad.make_jaxpr(f)(*args))[0])
    return [s.kernel.name for s in program.body if isinstance(s, K.Call)]


def test_bias_and_relu_become_the_conv_epilogue():
    """relu(conv(x, w) + b): one GEMM writes the final values (no elementwise pass after it),
    unless the pre-activation has another reader; results match eager either way."""
    x, w, b = _arr(2, 3, 12, 12), _arr(4, 3, 3, 3), _arr(4)
    conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "VALID")
    fused = lambda x, w, b: fnp.maximum(conv(x, w) + b[None, :, None, None], 0.0) * 2.0
    names = _kernel_names(fused, x, w, b)
    assert not [n for n in names if n.startswith("fused")], names
    shared = lambda x, w, b: (lambda y: (fnp.maximum(y, 0.0), fnp.sum(y)))(conv(x, w) + b[None, :, None, None])
    for f in (fused, shared):
        got, want = fgrad.jit(f)(x, w, b), f(x, w, b)
        for g, e in zip(np.atleast_1d(got) if not isinstance(got, tuple) else got,
                        np.atleast_1d(want) if not isinstance(want, tuple) else want):
            np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=2e-5, atol=2e-5)


def test_deferred_conv_as_a_program_output_and_read_twice():
    x, w = _arr(2, 3, 12, 12), _arr(4, 3, 3, 3)
    conv = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "VALID")
    for f in (lambda x, w: conv(x, w) + 1.0, lambda x, w: (conv(x, w), conv(x, w) * conv(x, w)),
              lambda x, w: conv(x, w) * conv(x, w)):
        got, want = fgrad.jit(f)(x, w), f(x, w)
        for g, e in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=2e-5, atol=2e-5)


def test_threefry_is_one_native_kernel_with_the_reference_bits():
    from fgrad.ops import misc
    rng = np.random.default_rng(5)
    words = [fnp.asarray(rng.integers(0, 2 ** 32, size, dtype=np.uint32)) for size in ((7,), (1,), (7,), (7,))]
    f = lambda k1, k2, x1, x2: misc.threefry2x32(k1, k2[0], x1, x2)
    assert [n.split("_")[0] for n in _kernel_names(f, *words)] == ["threefry"]
    for got, want in zip(fgrad.jit(f)(*words), f(*words)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    known = fgrad.jit(lambda: misc.threefry2x32(0, 0, 0, 0))()      # Random123's known answer
    assert [int(np.asarray(v)) for v in known] == [1797259609, 2579123966]


@pytest.mark.parametrize("padding,strides", [("VALID", (1, 1)), ("SAME", (1, 1)), (((1, 2), (0, 1)), (2, 2))])
def test_few_output_conv_weight_gradient_direct_kernel_matches_eager(padding, strides):
    """conv1's weight gradient (1 input channel, 3x3 kernel: 9 outputs per feature over a
    long window) takes the direct kernel; padding and strides included."""
    x, w = _arr(4, 1, 20, 20), _arr(8, 1, 3, 3)
    loss = lambda w: fnp.sum(fnp.tanh(lax.conv_general_dilated(x, w, strides, padding)) ** 2)
    g = fgrad.grad(loss)
    assert any(n.startswith("conv_direct") for n in _kernel_names(g, w))
    np.testing.assert_allclose(np.asarray(fgrad.jit(g)(w)), np.asarray(g(w)), rtol=2e-4, atol=2e-4)


def test_gpu_target_keeps_contractions_free_of_cpu_packing_buffers(monkeypatch):
    """For the GPU, convs and dots lower to loop nests (no per-thread packed panels the GPU
    would have to reserve for every resident thread); the program still computes the same."""
    from fgrad.backends.cuda import kernels_with_large_locals
    from fgrad.lower import rules  # noqa: F401
    from fgrad.lower.interpret import run_program
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert

    def grads_program(n, c, side, o, target):
        x, w, v = _arr(n, c, side, side), _arr(o, c, 3, 3), _arr(o * (side - 2) ** 2, 10)
        f = lambda x, w, v: fnp.tanh(lax.conv_general_dilated(x, w, (1, 1), "VALID").reshape(n, -1) @ v)
        g = fgrad.grad(lambda x, w, v: fnp.sum(f(x, w, v) ** 2), argnums=(1, 2))
        closed, consts = closure_convert(fgrad.make_jaxpr(g)(x, w, v))
        return lower_program(closed, target=target), consts, (x, w, v), g

    monkeypatch.setenv("FGRAD_CUDA_MAX_LOCAL_BYTES", "256")
    assert kernels_with_large_locals(grads_program(8, 4, 10, 16, "cpu")[0])
    assert not kernels_with_large_locals(grads_program(8, 4, 10, 16, "gpu")[0])
    program, consts, args, g = grads_program(2, 2, 6, 3, "gpu")
    got = run_program(program, *[np.asarray(c) for c in consts], *[np.asarray(a) for a in args])
    for a, b in zip(got, g(*args)):
        np.testing.assert_allclose(a, np.asarray(b), rtol=2e-4, atol=2e-4)


# A deferred contraction (dot / conv, emitted lazily so a pointwise consumer can become its
# epilogue) that seeds a buffer the program later writes over (a loop carry, a scatter's
# operand) must not make that buffer its home: its other readers saw the loop's result.
_CONTRACTIONS = {
    "dot": lambda a, w: a @ w,
    "grouped_conv": lambda a, w: lax.conv_general_dilated(
        a.reshape(1, 4, 3), w.reshape(4, 2, 1), (1,), [(0, 0)],
        dimension_numbers=("NCH", "OIH", "NCH"), feature_group_count=2),
    "conv": lambda a, w: lax.conv_general_dilated(
        a.reshape(1, 4, 3), w.reshape(2, 4, 1), (1,), [(0, 0)], dimension_numbers=("NCH", "OIH", "NCH")),
}
_OVERWRITERS = {
    "fori_loop": lambda y: lax.fori_loop(0, 3, lambda i, c: fnp.exp(-c * c) + i * 0.1, y),
    "while_loop": lambda y: lax.while_loop(lambda c: c[0] < 2, lambda c: (c[0] + 1, c[1] * 0.5 + 1.0),
                                           (0, y))[1],
    "scan": lambda y: lax.scan(lambda c, _: (fnp.sin(c) + 1.0, c.sum()), y, None, length=2)[0],
    "scatter": lambda y: y.at[..., fnp.asarray([0, 2])].set(7.0),
    "scatter_add": lambda y: y.at[..., 1].add(3.0),
}


@settings(max_examples=25, deadline=None)
@given(contraction=st.sampled_from(sorted(_CONTRACTIONS)), overwriter=st.sampled_from(sorted(_OVERWRITERS)),
       read_after=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_deferred_contraction_seeding_an_overwritten_buffer_keeps_its_value(contraction, overwriter,
                                                                             read_after, seed):
    rng = np.random.default_rng(seed)
    a = fnp.asarray(rng.standard_normal((4, 3)).astype(np.float32))
    w = fnp.asarray(rng.standard_normal((3, 3) if contraction == "dot" else (8,)).astype(np.float32))
    con, over = _CONTRACTIONS[contraction], _OVERWRITERS[overwriter]

    def f(a, w):
        y = con(a, w)
        z = over(y)
        return (z, y * 2.0) if read_after else (y, z)   # y read after the overwrite, or returned

    want = f(a, w)
    got = fgrad.jit(f)(a, w)
    for g, e in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=2e-5, atol=2e-5)


def test_jit_vmap_of_grouped_conv_seeding_a_fori_loop_keeps_the_conv_output():
    # fuzz seed 101300: vmap broadcasts the unbatched conv output after the loop ran on it
    x3 = np.linspace(-2, 2, 12, dtype=np.float32).reshape(1, 4, 3)
    x4 = np.linspace(-0.7, 0.7, 8, dtype=np.float32).reshape(4, 2, 1)

    def f(x0, x3, x4):
        v0 = x0[fnp.asarray(-1)]
        v2 = lax.conv_general_dilated(x3, x4, (1,), [(0, 0)], dimension_numbers=("NCH", "OIH", "NCH"),
                                      feature_group_count=2)
        v3 = lax.fori_loop(0, 3, lambda i, c: fnp.exp(-c * c) + i * 0.1, v2)
        return v0, v2, v3

    xs0 = np.array([[-1.2], [0.5]], np.float32)
    want = fgrad.vmap(f, in_axes=(0, None, None))(xs0, x3, x4)
    got = fgrad.jit(fgrad.vmap(f, in_axes=(0, None, None)))(xs0, x3, x4)
    for g, e in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-6, atol=1e-6)


def test_a_costly_fused_operand_is_stored_before_the_gemm_reads_it():
    """A GEMM operand that is a dear elementwise value (GELU's tanh form, read only by the
    product) is written by a vector loop first and read where it lies, not evaluated inside
    the pack's scalar loops; a cheap one (a bias add) stays fused. Values match NumPy."""
    from fgrad.lower import kernel as K, rules  # noqa: F401
    from fgrad.lower.schedule import lower_program
    from fgrad.transforms.jit import closure_convert
    rng = np.random.default_rng(0)
    h, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((96, 64), (64, 48), (64,)))

    def kernels_of(f):
        program = lower_program(closure_convert(fgrad.make_jaxpr(f)(h, w))[0])
        return [k for k in K.kernels_of(program)]

    def dear(h, w):
        return fgrad.nn.gelu(h + b, approximate=True) @ w

    def cheap(h, w):
        return (h + b) @ w
    computing = [k.name for k in kernels_of(dear) if "tanh(" in str(k)]
    assert computing and not [name for name in computing if "pack" in name or "gemm" in name]
    assert not [k for k in kernels_of(dear) if k.name.endswith("_pack_a")]
    assert not [k for k in kernels_of(cheap) if k.name.startswith("fused")]
    x = h + b
    gelu = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(np.asarray(fgrad.jit(dear)(h, w)), gelu @ w, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.asarray(fgrad.jit(cheap)(h, w)), x @ w, rtol=2e-5, atol=2e-5)
