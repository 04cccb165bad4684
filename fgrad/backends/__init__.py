"""Backends compile kernel IR programs for a device and run them (``base`` has the interfaces).

``fgrad.backends.cpu`` compiles with LLVM (llvmlite) for the host CPU; ``fgrad.backends.cuda``
(a package) renders CUDA C and runs it on NVIDIA GPUs. Backends are leaves: the layers above
(``fgrad.compile``, the transforms) call them, never the other way round.
"""
