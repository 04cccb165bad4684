"""fgrad: a functional, JAX-like transform library (grad, jvp, vjp, vmap, jit, shard)."""
from fgrad.config import config
from fgrad.core.array import Array
from fgrad.core.trace import make_jaxpr, ConcretizationError, UnexpectedTracerError
from fgrad.transforms.jvp import jvp
from fgrad.transforms.jacobian import jacfwd, jacrev, hessian
from fgrad.transforms.vjp import vjp, grad, value_and_grad, linearize
from fgrad.transforms.vmap import vmap
from fgrad.transforms.jit import jit
from fgrad.lower.fallback import ReferencePathWarning, HostFallbackWarning
from fgrad.transforms.custom import custom_jvp, custom_vjp
from fgrad.transforms.remat import checkpoint, remat, checkpoint_policies
from fgrad import numpy, tree, lax  # noqa: F401
from fgrad import datasets, nn, optim, random  # noqa: F401
from fgrad.transforms.shard import shard
from fgrad.devices import devices, local_devices, device_count, default_device
from fgrad.sharding import device_put, device_get
from fgrad import sharding, distributed  # noqa: F401

__all__ = ["config", "Array", "make_jaxpr", "ConcretizationError", "UnexpectedTracerError",
           "jvp", "jacfwd", "vjp", "grad", "value_and_grad", "jacrev", "hessian", "linearize",
           "vmap", "jit", "custom_jvp", "custom_vjp", "checkpoint", "remat", "checkpoint_policies", "numpy", "tree", "lax", "datasets", "nn", "optim", "random",
           "shard", "devices", "local_devices", "device_count", "default_device", "device_put", "device_get",
           "sharding", "distributed", "ReferencePathWarning", "HostFallbackWarning"]
