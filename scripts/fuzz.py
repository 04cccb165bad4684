"""Long-run differential fuzzing of fgrad: random programs, checked against themselves and JAX.

    python scripts/fuzz.py --seeds 0:2000 --out /tmp/fuzz          # eager/jit/vmap/grad/HVP
    python scripts/fuzz.py --seeds 0:2000 --jax --out /tmp/fuzz    # and vs JAX (where installed)
    python scripts/fuzz.py --seeds 0:2000 --extended --jax         # with linear algebra, scans,
                                                                   # special functions, FFTs, gathers

For each failing program it shrinks the program (drops lines while the same
failure category persists), writes the minimal repro to ``DIR/<category>/seed<N>.py``
and prints a table of failure categories at the end. Programs come from
``tests/fuzz/programs.py``; seeds listed in ``tests/fuzz/known_failures.py`` are
reported as known.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import fgrad  # noqa: E402
from tests.fuzz import checks as checks_module  # noqa: E402
from tests.fuzz.checks import ALL_CHECKS, NAMESPACE, Failure, check_program  # noqa: E402
from tests.fuzz.programs import Program, generate  # noqa: E402


def failures_of(prog: Program, use_jax: bool, checks=ALL_CHECKS) -> list[Failure]:
    fails = check_program(prog, checks)
    if use_jax and not any(f.check in ("eager_error", "generator_shape") for f in fails):
        from tests.fuzz.jax_oracle import compare_with_jax  # optional dependency: only with --jax
        fails += compare_with_jax(prog)
    return fails


def shrink(prog: Program, check: str, use_jax: bool) -> tuple[Program, Failure]:
    """Drop lines (and the lines that read them) while a failure of the same check persists."""
    def still(p: Program):
        if not p.lines:
            return None
        return next((f for f in failures_of(p, use_jax) if f.check == check), None)
    best = prog
    fail = still(prog)
    changed = True
    while changed:
        changed = False
        for line in list(reversed(best.lines)):
            cand = best.without({line.out})
            f = still(cand)
            if f is not None:
                best, fail, changed = cand, f, True
                break
        if changed:
            continue
        values = eager_values(best)
        read = {d for line in best.lines for d in line.deps}
        for line in best.lines:  # a line others read becomes an input holding its value
            if line.out in read and values is not None:
                cand = best.cut(line.out, values[line.out])
                f = still(cand)
                if f is not None:
                    best, fail, changed = cand, f, True
                    break
    return best, fail


def eager_values(prog: Program):
    """Every variable's eager fgrad value, or None where the program does not run."""
    try:
        with fgrad.config.override(enable_x64=True):
            outs = prog.function(NAMESPACE)(*prog.args())
        return {line.out: np.asarray(o) for line, o in zip(prog.lines, outs)}
    except Exception:  # noqa: BLE001
        return None


# ops that explain a failure without a disagreeing line (a reference-path compile, an error)
_SUSPECTS = ("sort", "argsort", "conv_grouped", "dynamic_slice_neg", "dynamic_update_slice_neg", "fori_loop",
             "while_loop", "at_multiply", "mask_index")


def quick_key(prog: Program, f: Failure) -> str:
    """A failure's likely category before shrinking (shrinking is what costs time)."""
    if f.op:
        return f"{f.check}:{f.op}"
    hint = next((op for op in _SUSPECTS if op in prog.ops), None)
    return f"{f.check}:{hint or '+'.join(sorted(set(prog.ops)))}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)[:80]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0:200", help="A:B, the half-open seed range")
    ap.add_argument("--max-ops", type=int, default=5)
    ap.add_argument("--jax", action="store_true", help="also compare with JAX (needs jax installed)")
    ap.add_argument("--extended", action="store_true",
                    help="also draw the extended op groups (tests/fuzz/programs.py EXTENDED)")
    ap.add_argument("--out", default=None, help="write minimal repros under this folder")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--repros", type=int, default=3,
                    help="shrink at most this many failures of one likely category (the rest are counted)")
    args = ap.parse_args(argv)
    a, b = (int(v) for v in args.seeds.split(":"))
    table: dict[str, list[int]] = collections.defaultdict(list)
    shrunk: collections.Counter = collections.Counter()
    t0 = time.time()
    for seed in range(a, b):
        if seed > a and (seed - a) % 500 == 0:   # a run cut short still says how far it got
            print(f"progress: seeds {a}:{seed} done in {time.time() - t0:.0f}s", flush=True)
        prog = generate(seed, max_ops=args.max_ops, extended=args.extended)
        try:
            fails = failures_of(prog, args.jax)
        except Exception as e:  # noqa: BLE001 - the harness itself must keep going
            fails = [Failure("harness_error", f"{type(e).__name__}: {e}")]
        seen = set()
        for f in fails:
            if f.check in seen:
                continue
            seen.add(f.check)
            key = quick_key(prog, f)
            shrunk[key] += 1
            if args.no_shrink or shrunk[key] > args.repros:
                small, sf = prog, f  # this kind of failure has repros enough: save the time
            else:
                small, sf = shrink(prog, f.check, args.jax)
            sf = sf or f
            cat = sf.category(small)
            table[cat].append(seed)
            print(f"seed {seed}: {cat}: {sf.detail.splitlines()[0][:240]}", flush=True)
            if args.out:
                folder = os.path.join(args.out, _slug(cat))
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, f"seed{seed}.py"), "w") as fh:
                    fh.write(small.source(note=f"{cat}\n{sf.detail}"))
    print(f"\n{b - a} programs (seeds {a}:{b}) in {time.time() - t0:.0f}s; "
          f"{sum(len(v) for v in table.values())} failures in {len(table)} categories")
    print("oracle coverage:", dict(checks_module.coverage))
    print(f"{'count':>6}  {'category':<60} seeds")
    for cat, seeds in sorted(table.items(), key=lambda kv: -len(kv[1])):
        print(f"{len(seeds):>6}  {cat:<60} {seeds[:8]}{' ...' if len(seeds) > 8 else ''}")
    return 1 if table else 0


if __name__ == "__main__":
    sys.exit(main())
