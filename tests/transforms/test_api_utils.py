"""Top-level helpers JAX users reach for: eval_shape and ShapeDtypeStruct, disable_jit,
block_until_ready, clear_caches, named_scope/named_call, default_backend, process_index."""
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
