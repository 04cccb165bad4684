"""fgrad: a functional, JAX-like transform library (grad, jvp, vjp, vmap, jit, shard)."""
from fgrad.config import config
from fgrad.core.array import Array
from fgrad.core.trace import make_jaxpr, ConcretizationError, UnexpectedTracerError
from fgrad.transforms.jvp import jvp
from fgrad.transforms.jacobian import jacfwd, jacrev, hessian
from fgrad.transforms.jacobian import jacrev as jacobian  # jax.jacobian is jax.jacrev
from fgrad.transforms.vjp import vjp, grad, value_and_grad, linearize, linear_transpose
from fgrad.transforms.vmap import vmap
from fgrad.transforms.jit import jit, disable_jit
from fgrad.transforms.api_utils import (eval_shape, block_until_ready, clear_caches, named_scope, named_call,
                                        default_backend, process_index, process_count, typeof, enable_x64,
                                        default_matmul_precision, effects_barrier, closure_convert)
from fgrad.core.types import ShapeDtypeStruct
from fgrad.lower.fallback import ReferencePathWarning, HostFallbackWarning
from fgrad.transforms.custom import custom_jvp, custom_vjp
from fgrad.transforms.remat import checkpoint, remat, checkpoint_policies
from fgrad import ad_checkpoint  # noqa: F401  (jax.ad_checkpoint: checkpoint_name)
from fgrad import numpy, tree, lax  # noqa: F401
from fgrad import datasets, nn, optim, random  # noqa: F401
from fgrad.transforms.shard import shard, shard_map
from fgrad.transforms.pmap import pmap
from fgrad.devices import devices, local_devices, device_count, local_device_count, default_device
from fgrad import tree_util, flatten_util  # noqa: F401  (jax.tree_util, jax.flatten_util)
from fgrad.sharding import device_put, device_get, make_mesh, NamedSharding, P
from fgrad.dtypes import float0
from fgrad import sharding, distributed  # noqa: F401
from fgrad.callbacks import pure_callback
from fgrad import debug, dtypes, experimental, image  # noqa: F401
from fgrad import ops
from fgrad.ops import segment as _segment
# jax.ops' public names on fgrad's primitive package (which itself imports nothing)
for _name, _fn in _segment.PUBLIC.items():
    setattr(ops, _name, _fn)
del _name, _fn

__all__ = ["config", "Array", "make_jaxpr", "ConcretizationError", "UnexpectedTracerError",
           "jvp", "jacfwd", "jacobian", "vjp", "grad", "linear_transpose", "value_and_grad", "jacrev", "hessian", "linearize",
           "vmap", "jit", "custom_jvp", "custom_vjp", "checkpoint", "remat", "checkpoint_policies", "numpy", "tree", "lax", "datasets", "nn", "optim", "random",
           "shard", "shard_map", "pmap", "devices", "local_devices", "device_count", "default_device", "device_put", "device_get", "make_mesh",
           "sharding", "distributed", "ReferencePathWarning", "HostFallbackWarning", "disable_jit", "eval_shape",
           "block_until_ready", "clear_caches", "named_scope", "named_call", "default_backend", "process_index",
           "process_count", "typeof", "enable_x64", "default_matmul_precision", "effects_barrier", "closure_convert", "NamedSharding", "P", "float0", "ShapeDtypeStruct", "local_device_count", "tree_util", "flatten_util",
           "pure_callback", "debug", "experimental", "image"]


def _version() -> str:
    """The installed package's version (its metadata), or ``0.0.0+unknown`` in a source tree that
    was never installed."""
    from importlib import metadata  # standard library, read on first use: it costs ~50 ms to import
    try:
        return metadata.version("fgrad")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def __getattr__(name: str):
    """``fgrad.__version__`` (a string, as ``jax.__version__``) and ``fgrad.__version_info__``
    (its numbers), computed on first use."""
    if name == "__version__":
        globals()["__version__"] = version = _version()
        return version
    if name == "__version_info__":
        numbers = __getattr__("__version__").split("+")[0].split(".")[:3]
        globals()["__version_info__"] = info = tuple(int(n) for n in numbers if n.isdigit())
        return info
    raise AttributeError(f"module 'fgrad' has no attribute {name!r}")
