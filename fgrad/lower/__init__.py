"""Lowering: from jaxprs to the loop-level kernel IR, and from the kernel IR to target code.

* ``kernel``: the kernel IR (programs of kernels over flat buffers) and its memory planner;
* ``interpret``: the IR's executable definition, in Python and NumPy;
* ``mathlib``: vectorisable float math as IR expansions;
* ``contraction``: dot_general and convolution templates;
* ``llvm``: the LLVM renderer (used by ``fgrad.backends.cpu``);
* ``schedule``/``pipeline``: jaxpr -> kernel IR, and the entry point ``jit`` uses.
"""
