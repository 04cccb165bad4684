"""JAX's smaller names (issue 16 item 9), each against JAX's documented behaviour:
``fgrad.__version__``, ``fgrad.config.update`` with JAX's option names, ``fnp.isscalar``,
``fgrad.make_mesh`` and ``fgrad.sharding.AxisType``, ``fgrad.tree``'s ``jax.tree.*`` names, and
``fgrad.jacobian``."""
import collections
import inspect
import operator
from importlib import metadata

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp
from fgrad import tree
from fgrad.devices import devices
from fgrad.sharding import AxisType, Mesh, NamedSharding, P, device_put

pytestmark = pytest.mark.filterwarnings("error::fgrad.ReferencePathWarning")


# --- __version__ ---------------------------------------------------------------------------------

def test_version_comes_from_the_package_metadata():
    assert isinstance(fgrad.__version__, str)
    try:
        assert fgrad.__version__ == metadata.version("fgrad")
    except metadata.PackageNotFoundError:
        assert fgrad.__version__ == "0.0.0+unknown"
    assert fgrad.__version_info__ == tuple(int(n) for n in fgrad.__version__.split("+")[0].split(".")[:3])
    from fgrad import __version__
    assert __version__ == fgrad.__version__
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        fgrad.no_such_name


def test_version_falls_back_when_fgrad_is_not_installed(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "version", missing)
    assert fgrad._version() == "0.0.0+unknown"


# --- config --------------------------------------------------------------------------------------

@pytest.fixture
def saved_config():
    names = ("enable_x64", "backend", "matmul_precision", "debug")
    old = {n: getattr(fgrad.config, n) for n in names}
    yield fgrad.config
    for n, v in old.items():
        setattr(fgrad.config, n, v)


def test_jax_enable_x64_is_enable_x64(saved_config):
    saved_config.update("jax_enable_x64", True)
    assert saved_config.enable_x64 and saved_config.jax_enable_x64 and saved_config.read("jax_enable_x64")
    assert fnp.asarray(np.ones(2)).dtype == np.float64
    saved_config.update("jax_enable_x64", False)
    assert not saved_config.enable_x64 and fnp.asarray(np.ones(2)).dtype == np.float32
    with saved_config.override(jax_enable_x64=True):
        assert saved_config.enable_x64
    assert not saved_config.enable_x64


@pytest.mark.parametrize("name,value,setting,want", [
    ("jax_platform_name", "cpu", "backend", "cpu"),
    ("jax_platform_name", "gpu", "backend", "cuda"),
    ("jax_platforms", "cuda", "backend", "cuda"),
    ("jax_platforms", "cuda,cpu", "backend", None),
    ("jax_platforms", "cpu", "backend", "cpu"),
    ("jax_platforms", None, "backend", None),
    ("jax_default_matmul_precision", "highest", "matmul_precision", "highest"),
    ("jax_default_matmul_precision", "float32", "matmul_precision", "highest"),
    ("jax_default_matmul_precision", "tensorfloat32", "matmul_precision", "tf32"),
    ("jax_default_matmul_precision", "bfloat16", "matmul_precision", "tf32"),
    ("jax_log_compiles", True, "debug", 1),
    ("jax_log_compiles", False, "debug", 0),
])
def test_jax_option_names_map_to_fgrad_settings(saved_config, name, value, setting, want):
    saved_config.update(name, value)
    assert getattr(saved_config, setting) == want


def test_jax_default_device_selects_the_backend(saved_config):
    saved_config.update("jax_default_device", devices(2, backend="cpu")[0])
    assert saved_config.backend == "cpu"
    saved_config.update("jax_default_device", None)
    assert saved_config.backend is None
    with pytest.raises(ValueError, match="device_put"):
        saved_config.update("jax_default_device", devices(2, backend="cpu")[1])


def test_unknown_or_unmappable_options_are_clear_errors(saved_config):
    with pytest.raises(ValueError, match=r"no setting 'jax_debug_nans'.*enable_x64.*jax_enable_x64"):
        saved_config.update("jax_debug_nans", True)
    with pytest.raises(ValueError, match="'tpu' is not available"):
        saved_config.update("jax_platforms", "tpu")
    with pytest.raises(ValueError, match="jax_default_matmul_precision must be one of"):
        saved_config.update("jax_default_matmul_precision", "sloppy")
    with pytest.raises(ValueError, match="True or False"):
        saved_config.update("jax_enable_x64", "yes")
    assert saved_config.backend in (None, "cpu", "cuda")


# --- isscalar ------------------------------------------------------------------------------------

#: jnp.isscalar's documented answers (JAX 0.10: zero-dimensional arrays are scalars).
ISSCALAR = [(1, True), (1.0, True), (True, True), (1 + 1j, True), ("a", True), (None, False), ([1], False),
            ((1,), False), (np.float32(1), True), (np.int32(1), True), (np.array(1.0), True),
            (np.array([1]), False), (np.zeros((2, 0)), False)]


@pytest.mark.parametrize("value,want", ISSCALAR, ids=[repr(v) for v, _ in ISSCALAR])
def test_isscalar_matches_jax(value, want):
    assert fnp.isscalar(value) is want


def test_isscalar_of_fgrad_arrays_is_the_same_under_jit():
    assert fnp.isscalar(fnp.asarray(1.0)) and not fnp.isscalar(fnp.asarray([1.0]))
    seen = []

    @fgrad.jit
    def f(x, y):
        seen.append((fnp.isscalar(x), fnp.isscalar(y)))
        return x + y.sum()
    f(fnp.asarray(1.0), fnp.ones(3))
    assert seen == [(True, False)]


# --- make_mesh and AxisType ----------------------------------------------------------------------

def test_make_mesh_has_jax_signature_and_explicit_default():
    params = inspect.signature(fgrad.make_mesh).parameters
    assert list(params) == ["axis_shapes", "axis_names", "axis_types", "devices"]
    assert params["devices"].kind is inspect.Parameter.KEYWORD_ONLY
    mesh = fgrad.make_mesh((2, 2), ("x", "y"))
    assert mesh.axis_types == (AxisType.Explicit, AxisType.Explicit) and mesh.shape == {"x": 2, "y": 2}
    assert Mesh(devices(2), ("d",)).axis_types == (AxisType.Auto,)
    auto = fgrad.make_mesh((2,), ("d",), (AxisType.Auto,), devices=devices(3)[1:])
    assert auto.axis_types == (AxisType.Auto,) and [d.index for d in auto.device_list] == [1, 2]
    assert fgrad.make_mesh((2,), ("d",), axis_types=AxisType.Auto).axis_types == (AxisType.Auto,)


def test_make_mesh_errors():
    with pytest.raises(ValueError, match="one shape per name"):
        fgrad.make_mesh((2, 2), ("x",))
    with pytest.raises(ValueError, match="Manual"):
        fgrad.make_mesh((2,), ("x",), (AxisType.Manual,))
    with pytest.raises(ValueError, match="one per axis"):
        fgrad.make_mesh((2, 1), ("x", "y"), (AxisType.Auto,))


@pytest.mark.parametrize("axis_type", [AxisType.Auto, AxisType.Explicit])
def test_a_made_mesh_shards_a_jitted_computation(axis_type):
    mesh = fgrad.make_mesh((4,), ("data",), (axis_type,))
    x_np = np.arange(32, dtype=np.float32).reshape(8, 4)
    x = device_put(fnp.asarray(x_np), NamedSharding(mesh, P("data")))
    y = fgrad.jit(lambda a: fnp.tanh(a) * 2.0)(x)
    np.testing.assert_allclose(np.asarray(y), np.tanh(x_np) * 2.0, rtol=1e-6)
    assert y.sharding.mesh == mesh


# --- fgrad.tree's jax.tree.* names ---------------------------------------------------------------

def test_tree_names_behave_as_jax_tree():
    t = {"b": (2, None), "a": [1, 3]}
    assert tree.leaves(t) == [1, 3, 2]
    leaves, treedef = tree.flatten(t)
    assert leaves == [1, 3, 2] and treedef == tree.structure(t)
    assert tree.unflatten(treedef, [10, 30, 20]) == {"a": [10, 30], "b": (20, None)}
    assert tree.map(lambda x, y: x * y, t, {"a": [2, 2], "b": (2, None)}) == {"a": [2, 6], "b": (4, None)}
    assert tree.map(lambda x: x, [None, 1], is_leaf=lambda x: x is None) == [None, 1]
    assert tree.reduce(operator.add, t) == 6 and tree.reduce(operator.add, t, 100) == 106
    assert tree.reduce_associative(operator.add, t) == 6
    assert tree.reduce_associative(operator.add, [], identity=0) == 0
    with pytest.raises(TypeError, match="identity"):
        tree.reduce_associative(operator.add, [])
    assert tree.all([1, (True, 2)]) and not tree.all([1, (0,)]) and tree.all([])
    with pytest.raises(TypeError):
        tree.all([1], lambda x: False)   # is_leaf is keyword-only, as in JAX


def test_reduce_associative_pairs_halves_like_jax():
    assert tree.reduce_associative(lambda a, b: f"({a}{b})", list("abcde")) == "((ab)(c(de)))"


def test_tree_transpose_and_broadcast():
    outer, inner = tree.structure([0, 0, 0]), tree.structure({"x": 0, "y": 0})
    rows = [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 6}]
    assert tree.transpose(outer, inner, rows) == {"x": [1, 3, 5], "y": [2, 4, 6]}
    assert tree.transpose(outer, None, rows) == {"x": [1, 3, 5], "y": [2, 4, 6]}
    assert tree.broadcast(1, {"a": [1, 2], "b": 3}) == {"a": [1, 1], "b": 1}
    assert tree.broadcast({"a": 0, "b": 9}, {"a": [1, 2], "b": 3}) == {"a": [0, 0], "b": 9}


def test_tree_path_names():
    t = {"a": [1, 2], "b": 3}
    paths = [tree.keystr(p) for p, _ in tree.leaves_with_path(t)]
    assert paths == ["['a'][0]", "['a'][1]", "['b']"]
    pairs, treedef = tree.flatten_with_path(t)
    assert [v for _, v in pairs] == [1, 2, 3] and treedef == tree.structure(t)
    assert tree.map_with_path(lambda p, v: len(p) * v, t) == {"a": [2, 4], "b": 3}


def test_tree_module_still_uses_the_builtins():
    Pair = collections.namedtuple("Pair", "x y")
    assert tree.tree_all([1, 2]) and tree.all_leaves([1, 2.0])
    assert tree.structure(Pair(1, 2)) == tree.structure(Pair(3, 4))
    assert list(map(int, ["1", "2"])) == [1, 2]


# --- jacobian ------------------------------------------------------------------------------------

def test_jacobian_is_jacrev():
    def f(x):
        return fnp.stack([x[0] * x[1], fnp.sin(x[1])])
    x = np.array([0.3, -1.2], np.float32)
    jac = np.asarray(fgrad.jacobian(f)(fnp.asarray(x)))
    want = np.array([[x[1], x[0]], [0.0, np.cos(x[1])]], np.float32)
    np.testing.assert_allclose(jac, want, rtol=1e-6)
    np.testing.assert_array_equal(jac, np.asarray(fgrad.jacrev(f)(fnp.asarray(x))))
    assert fgrad.jacobian is fgrad.jacrev


def test_numpy_scalar_type_aliases_are_jax_numpys():
    # jax.numpy: double/float_ are float64, single float32, int_ int64, uint uint64 (canonicalised
    # to 32 bits without x64); character/flexible/object_ are NumPy's abstract types
    assert fnp.double is fnp.float64 and fnp.float_ is fnp.float64 and fnp.single is fnp.float32
    assert fnp.int_ is fnp.int64 and fnp.uint is fnp.uint64
    assert fnp.zeros(2, fnp.double).dtype == np.float32 and fnp.int_(3).dtype == np.int32
    with fgrad.config.override(enable_x64=True):
        assert fnp.zeros(2, fnp.double).dtype == np.float64 and fnp.uint(3).dtype == np.uint64
    assert (fnp.character, fnp.flexible, fnp.object_) == (np.character, np.flexible, np.object_)
    assert not fnp.issubdtype(fnp.float32, fnp.flexible)


def test_lax_exposes_the_primitives_of_complex_parts_special_functions_and_fft():
    from fgrad import lax
    x, z = fnp.ones(3), fnp.ones(3, fnp.complex64)
    cases = [(lax.real_p, lax.real, (z,)), (lax.imag_p, lax.imag, (z,)), (lax.conj_p, lax.conj, (z,)),
             (lax.complex_p, lax.complex, (x, x)), (lax.lgamma_p, lax.lgamma, (x,)),
             (lax.digamma_p, lax.digamma, (x,)), (lax.igamma_p, lax.igamma, (x, x)),
             (lax.igammac_p, lax.igammac, (x, x)), (lax.fft_p, lambda v: lax.fft(v, "FFT", (3,)), (z,))]
    for prim, fn, args in cases:
        jaxpr = fgrad.make_jaxpr(fn)(*args)
        assert prim in [e.primitive for e in jaxpr.jaxpr.eqns], prim


def test_lax_enums_are_accepted_where_jax_takes_them():
    from fgrad import lax
    assert [int(m) for m in lax.RoundingMethod] == [0, 1] and [m.name for m in lax.FftType] == \
        ["FFT", "IFFT", "RFFT", "IRFFT"]
    assert float(lax.round(2.5, lax.RoundingMethod.TO_NEAREST_EVEN)) == 2.0
    assert float(lax.round(2.5, lax.RoundingMethod.AWAY_FROM_ZERO)) == 3.0
    np.testing.assert_allclose(lax.fft(fnp.ones(4), lax.FftType.RFFT, (4,)), [4, 0, 0])
    np.testing.assert_allclose(lax.fft(fnp.ones(4, fnp.complex64), lax.FftType.IFFT, (4,)), [1, 0, 0, 0])
    dims: lax.DotDimensionNumbers = (((1,), (0,)), ((), ()))
    precision: lax.PrecisionLike = lax.Precision.HIGHEST
    np.testing.assert_allclose(lax.dot_general(fnp.ones((2, 3)), fnp.ones((3, 2)), dims, precision=precision), 3.0)


def test_top_level_jax_names():
    with fgrad.enable_x64():
        assert fnp.arange(3.0).dtype == np.float64
    with fgrad.enable_x64(False):
        assert fnp.arange(3.0).dtype == np.float32
    assert fnp.arange(3.0).dtype == np.float32
    with fgrad.default_matmul_precision("tensorfloat32"):
        assert fgrad.config.matmul_precision == "tf32"
    assert fgrad.config.matmul_precision == "highest"
    assert fgrad.typeof(fnp.ones(2)).shape == (2,) and fgrad.typeof(1.0).weak_type
    assert fgrad.effects_barrier() is None
    assert fgrad.float0 is fgrad.dtypes.float0 and fgrad.P is fgrad.sharding.P
    assert fgrad.NamedSharding is fgrad.sharding.NamedSharding
