"""Top-level helpers JAX users reach for: eval_shape and ShapeDtypeStruct, disable_jit,
block_until_ready, clear_caches, named_scope/named_call, default_backend, process_index."""
import functools

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp


def test_eval_shape_traces_without_computing():
    calls = []

    def f(x, scale):
        calls.append(type(x).__name__)
        return {"gram": x @ x.T, "total": (x * scale).sum(), "ids": fnp.argmax(x, axis=1)}
    big = fgrad.ShapeDtypeStruct((100_000, 3), fnp.float32)     # 40 GB as a Gram matrix: never built
    out = fgrad.eval_shape(f, big, 2.0)
    assert out == {"gram": fgrad.ShapeDtypeStruct((100_000, 100_000), fnp.float32),
                   "total": fgrad.ShapeDtypeStruct((), fnp.float32),
                   "ids": fgrad.ShapeDtypeStruct((100_000,), fnp.int32)}
    assert calls == ["StagingTracer"]
    assert fgrad.eval_shape(lambda a: a + 1, np.zeros((2, 2), np.uint8)).dtype == fnp.uint8
    assert fgrad.eval_shape(lambda a: a * 1.5, 2.0).weak_type


def test_shape_dtype_struct_checks_and_stands_in_for_arrays():
    s = fgrad.ShapeDtypeStruct([2, 3], "float32")
    assert (s.shape, s.dtype, s.ndim, s.size) == ((2, 3), fnp.float32, 2, 6)
    assert repr(s) == "ShapeDtypeStruct(shape=(2, 3), dtype=float32)"
    assert s == fgrad.ShapeDtypeStruct((2, 3), np.float32) and s != fgrad.ShapeDtypeStruct((3, 2), np.float32)
    jaxpr = fgrad.make_jaxpr(lambda x: x * 2)(s)
    assert "f32[2,3]" in str(jaxpr)
    with pytest.raises(ValueError, match="non-negative"):
        fgrad.ShapeDtypeStruct((-1,), np.float32)
    with pytest.raises(TypeError, match="sequence of ints"):
        fgrad.ShapeDtypeStruct(3, np.float32)


def test_disable_jit_runs_the_python_function_op_by_op():
    seen = []
    f = fgrad.jit(lambda x: (seen.append(type(x).__name__), x * 2)[1])
    f(fnp.ones(2))
    with fgrad.disable_jit():
        np.testing.assert_array_equal(np.asarray(f(fnp.ones(2))), [2, 2])
        np.testing.assert_array_equal(np.asarray(f(fnp.ones(2))), [2, 2])
    f(fnp.ones(2))       # cached again
    assert seen == ["StagingTracer", "Array", "Array"]


def test_small_helpers():
    tree = {"a": fnp.ones(2), "b": [fnp.zeros(1), 3]}
    assert fgrad.block_until_ready(tree) is tree
    assert fgrad.default_backend() in ("cpu", "cuda")
    assert (fgrad.process_index(), fgrad.process_count()) == (0, 1)
    assert fgrad.local_device_count() >= 1
    assert fgrad.tree_util.tree_leaves(tree)[0] is tree["a"]
    with fgrad.named_scope("encoder"):
        y = fgrad.named_call(lambda x: x + 1, name="inc")(fnp.ones(2))
    np.testing.assert_array_equal(np.asarray(y), [2, 2])
    with pytest.raises(TypeError, match="must be a string"):
        with fgrad.named_scope(3):
            pass


def test_clear_caches_drops_compiled_programs():
    from fgrad.compile.cache import executables
    f = fgrad.jit(lambda x: x + 1)
    f(fnp.ones(3))
    assert len(executables) >= 1
    fgrad.clear_caches()
    assert len(executables) == 0
    np.testing.assert_array_equal(np.asarray(f(fnp.ones(3))), [2, 2, 2])    # compiled again
    assert len(executables) == 1


def test_closure_convert_hoists_the_traced_float_values_a_custom_vjp_needs():
    w0 = fnp.array([1.0, 2.0])
    k = fnp.array([3, 4])
    # as JAX 0.10: eagerly nothing is hoisted; under grad the traced float w is, the int k is not
    converted, consts = fgrad.closure_convert(lambda x, y: (x * w0, y), fnp.ones(2), 1.0)
    assert consts == []
    out = converted(fnp.ones(2), 2.0)
    np.testing.assert_array_equal(np.asarray(out[0]), [1.0, 2.0])
    assert float(out[1]) == 2.0

    @functools.partial(fgrad.custom_vjp, nondiff_argnums=(0,))
    def apply(fn, x, *params):
        return fn(x, *params)

    def apply_fwd(fn, x, *params):
        return fn(x, *params), (x, params)

    def apply_bwd(fn, res, g):
        x, params = res
        return fgrad.vjp(fn, x, *params)[1](g)
    apply.defvjp(apply_fwd, apply_bwd)

    def loss(w):
        fn, hoisted = fgrad.closure_convert(lambda x: x * w + k, fnp.ones(2))
        assert len(hoisted) == 1 and hoisted[0].dtype == np.float32
        return apply(fn, fnp.array([2.0, 3.0]), *hoisted).sum()
    np.testing.assert_allclose(np.asarray(fgrad.grad(loss)(w0)), [2.0, 3.0])
    with pytest.raises(TypeError, match="structure"):
        converted(fnp.ones(2))
