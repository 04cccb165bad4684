"""Every primitive has a rule for the data-parallel pass (``fgrad.core.partition``), or is
listed in ``unpartitioned`` with the reason it runs on whole values."""
import sys

import numpy as np
import pytest

import fgrad
from fgrad.core.partition import DataParallelError, PartitionSpec, default_rule, partition_rules, unpartitioned
from fgrad.core.primitive import Primitive
from fgrad.transforms import data_parallel  # registers the rules of the call primitives it walks inline


def _all_primitives() -> dict[str, Primitive]:
    found = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("fgrad") and module is not None:
            for value in vars(module).values():
                if isinstance(value, Primitive):
                    found[value.name] = value
    return found


def test_every_primitive_has_a_partition_rule_or_a_documented_reason():
    prims = _all_primitives()
    assert len(prims) > 90
    missing = sorted(n for n, p in prims.items() if p not in partition_rules and p not in unpartitioned)
    assert not missing, f"primitives with neither a partition rule nor an entry in unpartitioned: {missing}"
    both = sorted(n for n, p in prims.items() if p in partition_rules and p in unpartitioned)
    assert not both
    assert all(isinstance(reason, str) and reason for reason in unpartitioned.values())


def test_the_interpreter_reads_only_the_table():
    assert data_parallel.DataParallelError is DataParallelError
    assert "_default_rule" not in vars(data_parallel) and "dp_rules" not in vars(data_parallel)
    assert default_rule.__module__ == "fgrad.core.partition"


def test_a_primitive_without_a_rule_runs_on_whole_values_and_refuses_split_operands():
    from fgrad.ops.special import erf_p
    from fgrad.sharding import Mesh, NamedSharding, device_put
    assert erf_p in unpartitioned and erf_p not in partition_rules
    mesh = Mesh(fgrad.devices(2), ("data",))
    x = np.linspace(-1, 1, 8, dtype=np.float32)
    replicated = device_put(x, NamedSharding(mesh, PartitionSpec()))
    split = device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    f = fgrad.jit(lambda a, b: fgrad.lax.erf(a) + b)
    np.testing.assert_array_equal(np.asarray(f(replicated, 1.0)), np.asarray(fgrad.lax.erf(x)) + 1.0)
    with pytest.raises(DataParallelError, match="`erf`.*no data-parallel rule"):
        f(split, 1.0)
