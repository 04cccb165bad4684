"""Backends compile kernel IR programs for a device and run them (``base`` has the interfaces).

``fgrad.backends.cpu`` compiles with LLVM (llvmlite) for the host CPU.
"""
