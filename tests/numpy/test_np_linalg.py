"""dot, matmul (NumPy's batch/vector rules), tensordot, inner, outer, einsum vs NumPy."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp

from np_helpers import arrays, assert_matches

TOL = dict(rtol=1e-4, atol=1e-4)
sizes = st.integers(0, 4)
batch_shapes = st.lists(st.integers(1, 3), max_size=2).map(tuple)


@st.composite
def matmul_operands(draw):
    n, k, m = draw(sizes), draw(sizes), draw(sizes)
    batch = draw(batch_shapes)
    # each operand: a vector, a matrix, or a stack of matrices with a broadcastable batch
    def operand(rows, cols, vector_len):
        kind = draw(st.sampled_from(["vector", "matrix", "stack"]))
        if kind == "vector":
            return (vector_len,)
        if kind == "matrix":
            return (rows, cols)
        b = tuple(1 if draw(st.booleans()) else s for s in batch)
        return b[draw(st.integers(0, len(b))):] + (rows, cols)
    sa, sb = operand(n, k, k), operand(k, m, k)
    return draw(arrays(np.float32, sa, -3, 3)), draw(arrays(np.float32, sb, -3, 3))


@settings(max_examples=60, deadline=None)
@given(operands=matmul_operands())
def test_matmul_matches_numpy(operands):
    a, b = operands
    assert_matches(fnp.matmul(fnp.asarray(a), fnp.asarray(b)), np.matmul(a, b), **TOL)
    assert_matches(fnp.asarray(a) @ b, a @ b, **TOL)


@st.composite
def dot_operands(draw):
    k = draw(sizes)
    a_shape = draw(st.lists(st.integers(0, 3), max_size=2).map(tuple)) + (k,)
    b_kind = draw(st.integers(0, 2))
    b_shape = (k,) if b_kind == 0 else (draw(st.lists(st.integers(0, 3), max_size=b_kind - 1).map(tuple))
                                       + (k, draw(sizes)))
    return draw(arrays(np.float32, a_shape, -3, 3)), draw(arrays(np.float32, b_shape, -3, 3))


@settings(max_examples=40, deadline=None)
@given(operands=dot_operands())
def test_dot_inner_tensordot(operands):
    a, b = operands
    A, B = fnp.asarray(a), fnp.asarray(b)
    assert_matches(fnp.dot(A, B), np.dot(a, b), **TOL)
    assert_matches(A.dot(B), np.dot(a, b), **TOL)
    if b.ndim == 1:
        assert_matches(fnp.inner(A, B), np.inner(a, b), **TOL)
    assert_matches(fnp.tensordot(A, B, axes=([a.ndim - 1], [0 if b.ndim == 1 else b.ndim - 2])),
                   np.tensordot(a, b, axes=([a.ndim - 1], [0 if b.ndim == 1 else b.ndim - 2])), **TOL)


def test_products_of_scalars_and_vectors():
    a = np.arange(3, dtype=np.float32)
    b = np.arange(4, dtype=np.float32) - 1
    assert_matches(fnp.dot(2.0, fnp.asarray(a)), np.dot(2.0, a).astype(np.float32))
    assert_matches(fnp.outer(fnp.asarray(a), fnp.asarray(b)), np.outer(a, b))
    assert_matches(fnp.vdot(fnp.asarray(a), fnp.asarray(a)), np.vdot(a, a))
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert_matches(fnp.tensordot(fnp.asarray(m), fnp.asarray(m), axes=2), np.tensordot(m, m, axes=2))
    assert_matches(fnp.tensordot(fnp.asarray(m), fnp.asarray(b), axes=0), np.tensordot(m, b, axes=0))
    assert_matches(fnp.kron(fnp.asarray(m[:2, :2]), fnp.asarray(m[:2])), np.kron(m[:2, :2], m[:2]))
    assert_matches(fnp.inner(fnp.asarray(m), fnp.asarray(m)), np.inner(m, m))
    i = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert_matches(fnp.asarray(i) @ fnp.asarray(i.T), i @ i.T)
    assert_matches(fnp.asarray(i) @ fnp.asarray(m[:, :2]), i @ m[:, :2], **TOL)


EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]), ("ij->ji", [(2, 3)]), ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]), ("iij->j", [(3, 3, 2)]), ("ij->", [(2, 3)]), ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(2,), (3,)]), ("i,i->i", [(4,), (4,)]), ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]),
    ("...ij,...jk->...ik", [(5, 1, 2, 3), (4, 3, 2)]), ("...ij,...jk", [(2, 2, 3), (3, 4)]),
    ("i...,i...->...", [(2, 3), (2, 1)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 2), (2, 3)]), ("abc,cd->abd", [(2, 3, 4), (4, 2)]),
    ("ba", [(2, 3)]), ("Ab,b", [(2, 3), (3,)]), ("ij,jk", [(2, 1), (3, 4)]), ("ijk,ikl->ijl", [(2, 0, 3), (2, 3, 4)]),
    (" ij , jk -> ik ", [(2, 3), (3, 4)]), ("i,i,i->i", [(3,), (3,), (3,)]), ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]), ("...", [(2, 3)]), (",i->i", [(), (3,)]),
]


@pytest.mark.parametrize("subscripts, shapes", EINSUM_CASES)
def test_einsum_matches_numpy(subscripts, shapes):
    rng = np.random.default_rng(len(subscripts))
    operands = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    want = np.einsum(subscripts, *operands)
    assert_matches(fnp.einsum(subscripts, *[fnp.asarray(o) for o in operands]), want, **TOL)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_einsum_random_two_operand_contractions(data):
    letters = "abcde"
    sizes_of = {ch: data.draw(st.integers(1, 3)) for ch in letters}
    lhs = data.draw(st.lists(st.sampled_from(letters), min_size=0, max_size=3, unique=True))
    rhs = data.draw(st.lists(st.sampled_from(letters), min_size=0, max_size=3, unique=True))
    present = sorted(set(lhs) | set(rhs))
    out = data.draw(st.lists(st.sampled_from(present), unique=True, max_size=len(present))) if present else []
    spec = f"{''.join(lhs)},{''.join(rhs)}->{''.join(out)}"
    a = data.draw(arrays(np.float32, tuple(sizes_of[c] for c in lhs), -2, 2))
    b = data.draw(arrays(np.float32, tuple(sizes_of[c] for c in rhs), -2, 2))
    assert_matches(fnp.einsum(spec, fnp.asarray(a), fnp.asarray(b)), np.einsum(spec, a, b), **TOL)


def test_einsum_and_product_errors():
    with pytest.raises(ValueError, match="names 2 operands"):
        fnp.einsum("ij,jk->ik", fnp.ones((2, 3)))
    with pytest.raises(TypeError, match="subscript 'j' has size 3 in one operand and 4"):
        fnp.einsum("ij,jk->ik", fnp.ones((2, 3)), fnp.ones((4, 5)))
    with pytest.raises(ValueError, match="does not appear in the inputs"):
        fnp.einsum("ij->k", fnp.ones((2, 3)))
    with pytest.raises(ValueError, match="has 2 dimensions"):
        fnp.einsum("ijk->i", fnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"add '\.\.\.'"):
        fnp.einsum("...i->i", fnp.ones((2, 3)))
    with pytest.raises(TypeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        fnp.ones((2, 3)) @ fnp.ones((4, 5))
    with pytest.raises(TypeError, match="cannot be broadcast"):
        fnp.matmul(fnp.ones((2, 2, 3)), fnp.ones((3, 3, 4)))
    with pytest.raises(ValueError, match="at least 1-D"):
        fnp.matmul(fnp.ones(()), fnp.ones(3))
    with pytest.raises(TypeError, match="dot: shapes"):
        fnp.dot(fnp.ones(3), fnp.ones(4))
    with pytest.raises(TypeError, match="tensordot: shape mismatch"):
        fnp.tensordot(fnp.ones((2, 3)), fnp.ones((2, 3)), axes=([1], [0]))


# --- issue 17: vecdot and einsum's options -----------------------------------------------------------

def test_vecdot_contracted_axes_must_match():
    with pytest.raises(ValueError, match="contracted axes differ"):
        fnp.vecdot(fnp.asarray([1.0, 2.0]), fnp.asarray([3.0]))
    with pytest.raises(ValueError, match="contracted axes differ"):
        fnp.vecdot(fnp.ones((2, 3)), fnp.ones((3, 2)), axis=0)
    a, b = np.arange(6.0).reshape(2, 3), np.arange(3.0)
    assert_matches(fnp.vecdot(a, b), np.sum(a * b, axis=-1), rtol=1e-6)
    assert_matches(fnp.vecdot(a.T, a.T, axis=0), np.sum(a * a, axis=1), rtol=1e-6)


@pytest.mark.parametrize("x64", [False, True])
def test_vecdot_keeps_the_promoted_dtype(x64):
    with fgrad.config.override(enable_x64=x64):
        i32 = fnp.ones(3, fnp.int32)
        assert fnp.vecdot(i32, i32).dtype == np.int32 and int(fnp.vecdot(i32, i32)) == 3
        u8 = fnp.full(3, 100, fnp.uint8)
        assert fnp.vecdot(u8, fnp.ones(3, fnp.uint8)).dtype == np.uint8


def test_einsum_preferred_element_type_sets_accumulation_and_result_dtype():
    ints = fnp.ones(3, fnp.int32)
    assert fnp.einsum("i,i->", ints, ints, preferred_element_type=fnp.float32).dtype == np.float32
    assert fnp.einsum("i,i->", fnp.ones(3), fnp.ones(3), preferred_element_type=fnp.int32).dtype == np.int32
    with fgrad.config.override(enable_x64=True):
        x = fnp.asarray(np.array([1e8, 1.0, -1e8], np.float32))
        ones = fnp.ones(3, fnp.float32)
        out = fnp.einsum("i,i->", x, ones, preferred_element_type=fnp.float64)
        assert out.dtype == np.float64 and float(out) == 1.0   # accumulated in float64


def test_einsum_optimize_and_precision_are_validated_not_dropped():
    a = fnp.ones((2, 3))
    for optimize in (True, False, "greedy", "optimal", "auto"):
        assert_matches(fnp.einsum("ij,jk->ik", a, a.T, optimize=optimize), np.full((2, 2), 3.0, np.float32))
    for precision in (None, "highest", "default", ("high", "default")):
        assert_matches(fnp.einsum("ij,jk->ik", a, a.T, precision=precision), np.full((2, 2), 3.0, np.float32))
    with pytest.raises(ValueError, match="optimize='fast'"):
        fnp.einsum("ij,jk->ik", a, a.T, optimize="fast")
    with pytest.raises(ValueError, match="precision='bogus'"):
        fnp.einsum("ij,jk->ik", a, a.T, precision="bogus")
