"""The public face of ``fgrad.runtime.devices`` (the multi-device runtime): its names, and its
documentation as this module's."""

from fgrad.runtime.devices import (  # noqa: F401 (the public names)
    PlacementError, VirtualCpuDevice, gpu_count_cache, default_platform, devices, local_devices,
    device_count, local_device_count, default_device, is_local)
from fgrad.runtime.communicator import (  # noqa: F401 (the public names)
    CollectiveError, CollectiveRequest, Communicator, request_signature, check_signatures,
    ThreadCommunicator)

from fgrad.runtime import devices as _runtime_devices
from fgrad.runtime.devices import __all__  # noqa: F401

__doc__ = _runtime_devices.__doc__
