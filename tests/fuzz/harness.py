"""What the fuzz test files share: one parameter per seed (known failures marked xfail) and
running one seed's program through a checker."""
from __future__ import annotations

from typing import Callable, Iterable

import pytest

from tests.fuzz.programs import generate

MAX_OPS = 4


def seed_params(seeds: Iterable[int], known: dict[int, str], extended: bool = False) -> list:
    """One pytest parameter ``(seed, extended)`` per seed, named ``x<seed>`` for the extended
    programs; a seed in ``known`` (seed -> why) is a non-strict xfail."""
    return [pytest.param(s, extended, id=f"{'x' if extended else ''}{s}",
                         marks=[pytest.mark.xfail(reason=known[s], strict=False)] if s in known else [])
            for s in seeds]


def run_seed(seed: int, check: Callable, extended: bool = False) -> None:
    """Generate seed's program (``extended``: from every op group, ``programs.EXTENDED`` too) and
    fail with every failure ``check`` finds, plus a standalone repro."""
    prog = generate(seed, max_ops=MAX_OPS, extended=extended)
    failures = check(prog)
    if failures:
        detail = "\n".join(f"{f.category(prog)}: {f.detail}" for f in failures)
        pytest.fail(f"{detail}\n\n--- repro ---\n{prog.source()}", pytrace=False)
