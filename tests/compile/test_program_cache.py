"""Warm starts: a jitted program saved on disk is found by its jaxpr's key in a later process
(simulated by emptying the in-memory caches) without lowering or LLVM, and runs alike."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import nn
from fgrad.backends import cpu, llvm_pool, llvm_worker
from fgrad.compile import executables, pipeline
from fgrad.compile.program_key import program_key
from fgrad.core.ir import ClosedJaxpr, Eqn, Jaxpr, Var
from fgrad.core.types import ShapedArray


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FGRAD_CACHE_DIR", str(tmp_path))
    _new_process()
    yield tmp_path / "llvm"
    _new_process()


def _new_process():
    """Forget everything compiled in memory, as a new process would start (disk stays)."""
    cpu.clear_memory_cache()
    executables.discard("program")


def _forbid_compiling(monkeypatch):
    fail = lambda *a, **k: pytest.fail("lowered or compiled; should have been loaded")
    monkeypatch.setattr(pipeline, "lower_program", fail)
    monkeypatch.setattr(llvm_pool, "compile_modules", fail)
    monkeypatch.setattr(llvm_worker, "optimise_to_object", fail)


def _mlp_step(params, x, y):
    def loss(p):
        h = nn.gelu(x @ p["w1"] + p["b1"])
        return fnp.mean((h @ p["w2"] - y) ** 2)
    value, grads = fgrad.value_and_grad(loss)(params)
    return value, fgrad.tree.tree_map(lambda p, g: p - 0.1 * g, params, grads)


def _mlp_args():
    rng = np.random.default_rng(0)
    params = {"w1": rng.standard_normal((8, 16)).astype(np.float32), "b1": np.zeros(16, np.float32),
              "w2": rng.standard_normal((16, 3)).astype(np.float32)}
    return params, rng.standard_normal((5, 8)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)


def _leaves(tree):
    return [np.asarray(leaf) for leaf in fgrad.tree.tree_leaves(tree)]


def test_a_warm_start_loads_without_lowering_and_runs_alike(cache_dir, monkeypatch):
    args = _mlp_args()
    cold = _leaves(fgrad.jit(_mlp_step)(*args))
    assert list(cache_dir.glob("*.program"))
    _new_process()
    _forbid_compiling(monkeypatch)
    warm = _leaves(fgrad.jit(_mlp_step)(*args))
    for a, b in zip(cold, warm):
        np.testing.assert_array_equal(a, b)


def test_results_are_bit_identical_with_the_caches_on_and_off(tmp_path, monkeypatch):
    args = _mlp_args()
    runs = []
    for setting in ("off", str(tmp_path), str(tmp_path)):      # no cache, cold cache, warm cache
        monkeypatch.setenv("FGRAD_CACHE_DIR", setting)
        _new_process()
        runs.append(_leaves(fgrad.jit(_mlp_step)(*args)))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)
    _new_process()


def test_donation_survives_the_warm_start(cache_dir, monkeypatch):
    def update(w, g):
        return w - 0.5 * g
    w, g = np.arange(6, dtype=np.float32), np.ones(6, np.float32)
    fgrad.jit(update, donate_argnums=0)(fnp.asarray(w), g)
    _new_process()
    _forbid_compiling(monkeypatch)
    out = fgrad.jit(update, donate_argnums=0)(fnp.asarray(w), g)
    np.testing.assert_array_equal(np.asarray(out), w - 0.5)
    (executable,) = [e for e in executables.programs("program") if isinstance(e, cpu.CpuExecutable)]
    assert executable.aliases == {0: 0}


def test_program_constants_are_saved(cache_dir, monkeypatch):
    # a sort's passes read their offsets from scalar constants of the program
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    cold = np.asarray(fgrad.jit(fnp.sort)(x))
    (manifest,) = cache_dir.glob("*.program")
    assert pickle.loads(cpu._disk_cache.read(manifest))["constants"]
    _new_process()
    _forbid_compiling(monkeypatch)
    warm = np.asarray(fgrad.jit(fnp.sort)(x))
    np.testing.assert_array_equal(cold, warm)
    np.testing.assert_array_equal(warm, np.sort(x))


def _kernel_objects(cache_dir) -> list:
    """The cache entries holding one kernel's code (not those naming a group object)."""
    return [path for path in sorted(cache_dir.glob("fgk_*.o"))
            if not cpu._disk_cache.read(path).startswith(cpu._GROUP_REF)]


def test_a_missing_kernel_object_means_compiling_again(cache_dir, monkeypatch):
    monkeypatch.setattr(cpu, "GROUP_KERNEL_CHARS", 0)       # every kernel an object of its own
    args = _mlp_args()
    cold = _leaves(fgrad.jit(_mlp_step)(*args))
    for path in _kernel_objects(cache_dir)[:2]:
        path.unlink()
    _new_process()
    before = dict(cpu.kernel_sources)
    warm = _leaves(fgrad.jit(_mlp_step)(*args))
    assert cpu.kernel_sources["compiled"] - before.get("compiled", 0) == 2
    for a, b in zip(cold, warm):
        np.testing.assert_array_equal(a, b)


def test_small_kernels_share_a_group_object_and_a_missing_one_compiles_its_members(cache_dir):
    args = _mlp_args()
    cold = _leaves(fgrad.jit(_mlp_step)(*args))
    groups = sorted(cache_dir.glob("fgg_*.o"))
    assert groups, "the step's small kernels are compiled in groups"
    members = cpu._disk_cache.read(groups[0])[len(cpu._GROUP):].partition(b"\n")[0].split()
    assert len(members) > 1
    for member in members:      # each member's entry names the group
        entry = cpu._disk_cache.read(cache_dir / (member.decode() + ".o"))
        assert entry == cpu._GROUP_REF + groups[0].stem.encode()
    _new_process()
    before = dict(cpu.kernel_sources)
    np.testing.assert_array_equal(_leaves(fgrad.jit(_mlp_step)(*args))[0], cold[0])
    assert cpu.kernel_sources["compiled"] == before.get("compiled", 0)      # all from the cache
    groups[0].unlink()
    _new_process()
    before = dict(cpu.kernel_sources)
    warm = _leaves(fgrad.jit(_mlp_step)(*args))
    assert cpu.kernel_sources["compiled"] - before.get("compiled", 0) == len(members)
    for a, b in zip(cold, warm):
        np.testing.assert_array_equal(a, b)


def _closed(fun, *args):
    return fgrad.make_jaxpr(fun)(*args)


def test_the_key_names_exactly_what_is_compiled():
    x = np.ones(3, np.float32)
    key = lambda fun, *a, donated=(), target="t": program_key(_closed(fun, *a), "jit", donated, target)
    assert key(lambda v: v * 2.0 + 1.0, x) == key(lambda v: v * 2.0 + 1.0, x)        # retraced: same
    assert key(lambda v: v * 2.0 + 1.0, x) != key(lambda v: v * 2.0 + 1.5, x)        # a literal
    assert key(lambda v: v * 2.0, x) != key(lambda v: v * 2.0, np.ones(4, np.float32))  # a shape
    assert key(lambda v: v * 2, x) != key(lambda v: v * 2, x.astype(np.int32))   # a dtype (float64 would narrow)
    assert key(lambda v: v.sum(0), np.ones((2, 3))) != key(lambda v: v.sum(1), np.ones((2, 3)))  # a param
    assert key(lambda v: v * 2.0, x) != key(lambda v: v * 2.0, x, donated=(0,))
    assert key(lambda v: v * 2.0, x) != key(lambda v: v * 2.0, x, target="other cpu")


def test_params_that_cannot_be_written_exactly_give_no_key():
    closed = _closed(lambda v: v + 1.0, np.ones(3, np.float32))
    eqn = closed.jaxpr.eqns[0]
    odd = Eqn(eqn.primitive, eqn.invars, [Var(ShapedArray((3,), np.float32))], {"rule": lambda: 0})
    jaxpr = Jaxpr([], closed.jaxpr.invars, [odd], odd.outvars)
    assert program_key(ClosedJaxpr(jaxpr, []), "jit", (), "t") is None


def test_a_model_edit_reuses_the_unchanged_kernels_from_disk(cache_dir):
    args = _mlp_args()
    fgrad.jit(_mlp_step)(*args)
    _new_process()

    def edited_step(params, x, y):           # the same model with another loss: an edit
        def loss(p):
            h = nn.gelu(x @ p["w1"] + p["b1"])
            return fnp.mean(fnp.abs(h @ p["w2"] - y))
        value, grads = fgrad.value_and_grad(loss)(params)
        return value, fgrad.tree.tree_map(lambda p, g: p - 0.1 * g, params, grads)
    before = dict(cpu.kernel_sources)
    out = _leaves(fgrad.jit(edited_step)(*args))
    delta = {kind: cpu.kernel_sources[kind] - before.get(kind, 0) for kind in ("compiled", "disk")}
    assert delta["disk"] > 0 and 0 < delta["compiled"] < delta["disk"] + delta["compiled"]
    expected = _leaves(edited_step(*[fgrad.tree.tree_map(fnp.asarray, a) for a in args]))
    for a, b in zip(out, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_program_key_is_the_hash_of_each_part_and_its_terminator():
    """The key's digest is fixed by the parts the writer lists (however they are fed to the
    hash), and avals that differ only in weak type or varying axes write different parts,
    whichever was written first."""
    import hashlib

    from fgrad.compile.program_key import _aval, _KeyWriter, _source_version
    closed = fgrad.make_jaxpr(lambda x: fnp.sin(x) * 2.0 + x)(np.ones((2, 3), np.float32))
    writer = _KeyWriter()
    writer.closed(closed)
    h = hashlib.sha256()
    h.update("\n".join((_source_version(), "target", "f", repr((0,)))).encode())
    for part in writer.parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\x00")
    assert program_key(closed, "f", (0,), "target") == h.hexdigest()
    strong, weak = ShapedArray((3,), np.float32), ShapedArray((3,), np.float32, weak_type=True)
    varying = ShapedArray((3,), np.float32, vma=frozenset({"data"}))
    texts = [_aval(weak), _aval(strong), _aval(varying), _aval(strong), _aval(weak)]
    assert len(set(texts[:3])) == 3 and texts[3] == texts[1] and texts[4] == texts[0]
