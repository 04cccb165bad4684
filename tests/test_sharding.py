"""Devices, meshes, partition specs and device_put: blocks land where the spec says, gathering
gives back the array, and mistakes are errors that name the key path, dimension and axis."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
from fgrad import numpy as fnp
from fgrad.devices import devices, device_count, default_device
from fgrad.sharding import Mesh, NamedSharding, P, ShardedArray, device_get, device_put, make_mesh


def mesh1(n=4, name="data"):
    return Mesh(devices(n), (name,))


def mesh2(x=2, y=4):
    return Mesh(np.array(devices(x * y), dtype=object).reshape(x, y), ("x", "y"))


def test_devices_follow_the_environment(monkeypatch):
    monkeypatch.delenv("FGRAD_CPU_DEVICES", raising=False)
    assert len(devices()) == 1 and device_count() == 1 and default_device() == devices()[0]
    monkeypatch.setenv("FGRAD_CPU_DEVICES", "8")
    assert [d.index for d in devices()] == list(range(8))
    assert len(devices(3)) == 3  # an explicit count wins
    monkeypatch.setenv("FGRAD_CPU_DEVICES", "zero")
    with pytest.raises(ValueError, match="FGRAD_CPU_DEVICES must be a positive integer"):
        devices()


def test_mesh_shape_ranks_and_groups():
    mesh = mesh2()
    assert mesh.shape == {"x": 2, "y": 4} and mesh.size == 8
    assert mesh.coords(6) == {"x": 1, "y": 2}
    assert mesh.group(6, ("y",)) == (4, 5, 6, 7)
    assert mesh.group(6, ("x",)) == (2, 6)
    assert mesh.group(6, ("x", "y")) == tuple(range(8))
    assert mesh == mesh2() and hash(mesh) == hash(mesh2()) and mesh != mesh1(8)
    assert make_mesh((2, 4), ("x", "y")) == mesh


@pytest.mark.parametrize("build,match", [
    (lambda: Mesh(devices(4), ("a", "b")), "2 axis names"),
    (lambda: Mesh(np.array(devices(4), dtype=object).reshape(2, 2), ("a", "a")), "distinct"),
    (lambda: Mesh([devices(2)[0]] * 2, ("a",)), "appears twice"),
    (lambda: Mesh([1, 2], ("a",)), "expected fgrad devices"),
])
def test_mesh_errors(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_partition_spec_normalisation():
    assert P("data") == P("data", None) == P(("data",))
    assert P() == P(None, None) and hash(P()) == hash(P(None))
    assert P(("x", "y")).axes(0) == ("x", "y") and P(None, "y").axes(0) == ()
    assert repr(P("data", None)) == "P('data', None)"
    with pytest.raises(TypeError, match="PartitionSpec entries"):
        P(3)


def test_named_sharding_errors():
    with pytest.raises(ValueError, match="names mesh axis 'model'.*has axes \\('data',\\)"):
        NamedSharding(mesh1(), P("model"))
    with pytest.raises(ValueError, match="uses mesh axis 'data' for two dimensions"):
        NamedSharding(mesh1(), P("data", "data"))


def test_replicated_and_split_placement():
    mesh = mesh1(4)
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    rep = device_put(x, NamedSharding(mesh, P()))
    split = device_put(x, NamedSharding(mesh, P("data")))
    assert isinstance(rep, ShardedArray) and isinstance(split, fgrad.Array)
    assert all(s.shape == (8, 3) for s in rep.shards)
    assert [s.shape for s in split.shards] == [(2, 3)] * 4
    np.testing.assert_array_equal(split.shards[2], x[4:6])
    np.testing.assert_array_equal(np.asarray(split), x)
    np.testing.assert_array_equal(np.asarray(rep), x)
    assert split.shape == (8, 3) and split.dtype == np.float32
    assert [s.index for s in split.addressable_shards][1] == (slice(2, 4), slice(None))
    assert "sharding=P('data') on Mesh(data=4)" in repr(split)


def test_placed_arrays_are_immutable_copies():
    x = np.ones((4, 2), np.float32)
    a = device_put(x, NamedSharding(mesh1(2), P("data")))
    x[:] = 7  # the caller's array may change; the placed one does not
    assert np.asarray(a).tolist() == [[1.0, 1.0]] * 4
    with pytest.raises(ValueError):
        a.shards[0][0, 0] = 3


def test_eager_operations_see_the_whole_array():
    x = np.arange(8, dtype=np.float32)
    a = device_put(fnp.asarray(x), NamedSharding(mesh1(4), P("data")))
    np.testing.assert_array_equal(np.asarray(a * 2 + 1), x * 2 + 1)
    assert float(fnp.sum(a)) == 28.0 and a[3].item() == 3.0


def test_pytree_prefix_of_shardings_and_device_get():
    mesh = mesh1(2)
    batch = {"x": np.zeros((4, 3), np.float32), "y": np.arange(4, dtype=np.int32)}
    params = [np.ones(3, np.float32)]
    placed = device_put((params, batch), (NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))))
    assert placed[1]["y"].sharding.spec == P("data") and placed[0][0].sharding.spec == P()
    got = device_get(placed)
    assert isinstance(got[1]["y"], np.ndarray) and got[1]["y"].tolist() == [0, 1, 2, 3]
    plain = device_put(np.ones(2))
    assert plain.device == default_device() and not isinstance(plain, ShardedArray)


def test_divisibility_error_names_path_dimension_axis_and_sizes():
    batch = {"images": np.zeros((10, 3), np.float32)}
    with pytest.raises(ValueError, match=r"\['images'\].*dimension 0 of size 10 is not divisible by mesh axis "
                                         r"data \(data=4, 4 parts\)"):
        device_put(batch, NamedSharding(mesh1(4), P("data")))
    with pytest.raises(ValueError, match="has 2 entries but the array has rank 1"):
        device_put(np.zeros(4), NamedSharding(mesh1(2), P(None, "data")))


def test_prefix_mismatch_is_an_error():
    mesh = mesh1(2)
    with pytest.raises(ValueError, match="pytree prefix"):
        device_put((np.zeros(2), np.zeros(2)), (NamedSharding(mesh, P()),) * 3)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([P(), P("x"), P("y"), P(None, "y"), P("y", "x"), P(("x", "y")), P(None, ("y", "x"))]),
       st.integers(1, 2), st.integers(1, 2))
def test_two_axis_mesh_round_trip(spec, a, b):
    mesh = mesh2(2, 4)
    x = np.arange(8 * a * 8 * b, dtype=np.int32).reshape(8 * a, 8 * b)
    placed = device_put(x, NamedSharding(mesh, spec))
    np.testing.assert_array_equal(np.asarray(placed), x)
    for rank, shard in enumerate(placed.shards):
        index = placed.addressable_shards[rank].index
        np.testing.assert_array_equal(shard, x[index])
        assert shard.shape == NamedSharding(mesh, spec).shard_shape(x.shape)
