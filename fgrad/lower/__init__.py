"""Lowering: from jaxprs to the loop-level kernel IR, and from the kernel IR to target code.
Pure: the machine arrives as data (``target.LoweringTarget``); nothing here imports a backend.

* ``schedule`` + ``rules`` (with ``layout_rules``, ``window_rules``, ``sort``, ``contraction``,
  ``lapack``, ``gpu_lowering``, ``horizontal``): jaxpr -> kernel IR; ``rules.lower_program`` is
  the entry;
* ``extern``: where the external routines programs call by name (LAPACK, BLAS) live;
* ``kernel`` (``kernel_types``, ``kernel_expr``, ``kernel_stmt``, ``memory_plan``): the kernel IR
  and its memory planner; ``scalar_ops``: the one table of scalar-op semantics;
* ``interpret``: the IR's executable definition, in Python and NumPy;
* ``mathlib``: vectorisable float math as IR expansions;
* ``llvm`` (``llvm_*``): the LLVM renderer (used by ``fgrad.backends.cpu``);
* ``cuda`` (``cuda_scalar``, ``cuda_launch``, ``cuda_contraction``) and ``gpu_modes``: the CUDA C
  renderer and the kernel-mode choice it is given (used by ``fgrad.backends.cuda``).

The compile path (``fgrad.compile``) calls the lowering, then a backend.
"""
