"""Never silently slow: every primitive has a native lowering (or is run natively by other
means, listed below with how); the tutorial's training step compiles natively; and a program
that does fall back to the reference path says so with one ``fgrad.ReferencePathWarning``
naming the equation, its primitive and why (none when FGRAD_JIT_BACKEND=reference chose it)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fgrad
from fgrad import lax, numpy as fnp, optim, random
from fgrad.core.primitive import all_primitives
from fgrad.compile import pipeline
from fgrad.lower.schedule import lowering_rules, runs_own_programs
from fgrad.ops.sort import sort_p

ROOT = Path(__file__).resolve().parents[2]

#: Primitives without a kernel-IR lowering rule, and how their programs still run natively.
LOWERED_OTHERWISE = {
    "shard": "runs its own per-device programs; a jitted program around it is compiled in "
             "pieces (schedule.runs_own_programs)",
    "psum": "shard splits its per-device program at collectives; the backend runs them",
    "pmax": "shard splits its per-device program at collectives; the backend runs them",
    "pmin": "shard splits its per-device program at collectives; the backend runs them",
    "all_gather": "shard splits its per-device program at collectives; the backend runs them",
    "psum_scatter": "shard splits its per-device program at collectives; the backend runs them",
    "ppermute": "shard splits its per-device program at collectives; the backend runs them",
    "axis_index": "shard feeds each device its coordinate as an input of its stages",
    "custom_lin": "only inside linearize of a custom_vjp; transposed into the user's bwd before "
                  "anything is compiled (evaluating it forward is an error)",
    # complex numbers (issue 17): a program holding complex values compiles as its real form
    # (fgrad.lower.complex_split), where these become operations on the two float parts
    **{name: "complex programs compile as their real form (fgrad.lower.complex_split): this "
             "becomes operations on the float parts" for name in ("real", "imag", "conj", "complex")},
    "fft": "always has a complex side, so its program compiles as its real form "
           "(fgrad.lower.complex_split), which calls NumPy's pocketfft through a host callback "
           "inside the native program",
    "eig": "has complex results, so its program compiles as its real form (fgrad.lower.complex_split), "
           "which calls LAPACK's geev (SciPy) through a host callback inside the native program",
}


@pytest.mark.parametrize("prim", sorted(all_primitives, key=lambda p: p.name), ids=lambda p: p.name)
def test_every_primitive_lowers_or_is_listed(prim):
    lowered = prim in lowering_rules or prim in runs_own_programs
    listed = prim.name in LOWERED_OTHERWISE
    assert lowered or listed, f"{prim.name} has no lowering rule: jitted programs using it fall back"
    assert not (prim in lowering_rules and listed), f"{prim.name} lowers now: take it off LOWERED_OTHERWISE"


def test_the_list_names_only_real_primitives():
    assert set(LOWERED_OTHERWISE) <= {p.name for p in all_primitives}


def test_the_tutorial_training_step_compiles_natively():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import mnist as example
    finally:
        sys.path.remove(str(ROOT / "examples"))
    rng = np.random.default_rng(0)
    X = fnp.asarray(rng.integers(0, 256, (32, 1, 28, 28), dtype=np.uint8))
    Y = fnp.asarray(rng.integers(0, 10, (32,), dtype=np.uint8))
    opt = optim.adam(1e-3)
    model = example.Model(key=random.key(0))
    state = opt.init(model)
    step = example.make_step(opt, X, Y, 8)
    before = dict(pipeline.compiled_by_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        for i in range(2):
            model, state, loss = step(model, state, random.fold_in(random.key(1), i))
    assert np.isfinite(float(loss))
    assert pipeline.compiled_by_path["native"] > before.get("native", 0)
    assert pipeline.compiled_by_path["reference"] == before.get("reference", 0)


# --- the warning -----------------------------------------------------------------------------------

@pytest.fixture
def without_sort_rule(monkeypatch):
    monkeypatch.delitem(lowering_rules, sort_p)


def test_a_fallback_warns_once_per_program_naming_the_equation(without_sort_rule):
    f = fgrad.jit(lambda x: fnp.sin(lax.sort(x * 2, 0)))
    x = np.arange(5, dtype=np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            np.testing.assert_array_equal(np.asarray(f(x)), np.sin(np.sort(x * 2)))
    [w] = [w for w in caught if issubclass(w.category, fgrad.ReferencePathWarning)]
    text = str(w.message)
    assert "reference path" in text and "primitive 'sort'" in text and "sort[dimension=0" in text
    assert "no lowering rule" in text
    assert w.filename == __file__          # it points at the user's line, not into fgrad


def test_a_fallback_inside_control_flow_names_the_inner_equation(without_sort_rule):
    f = fgrad.jit(lambda x: lax.cond(x[0] > 0, lambda v: lax.sort(v, 0), lambda v: v, x))
    with pytest.warns(fgrad.ReferencePathWarning, match="primitive 'sort'"):
        f(np.ones(3, np.float32))


def test_choosing_the_reference_path_does_not_warn(without_sort_rule, monkeypatch):
    monkeypatch.setenv("FGRAD_JIT_BACKEND", "reference")
    before = pipeline.compiled_by_path["reference"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        out = fgrad.jit(lambda x: lax.sort(x, 0) + 1)(np.array([2.0, 1.0], np.float32))
    np.testing.assert_array_equal(np.asarray(out), [2.0, 3.0])
    assert pipeline.compiled_by_path["reference"] == before + 1


def test_jit_of_shard_is_compiled_in_pieces_not_sent_to_the_reference_path():
    from fgrad.sharding import Mesh, P
    mesh = Mesh(fgrad.devices()[:1], ("i",))
    inner = fgrad.shard(lambda b: lax.psum(fnp.sin(b) * 2, "i"), mesh, P("i"), P())
    f = fgrad.jit(lambda a, s: inner(a * s) + 1)
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2)
    before = pipeline.compiled_by_path["reference"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        out = f(x, 3.0)
        g = fgrad.jit(fgrad.grad(lambda a: f(a, 2.0).sum()))(x)
    assert pipeline.compiled_by_path["reference"] == before
    np.testing.assert_allclose(np.asarray(out), np.sin(x * 3) * 2 + 1, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g), np.cos(x * 2) * 4, rtol=1e-5)
