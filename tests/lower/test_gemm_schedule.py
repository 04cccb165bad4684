"""The GEMM template's schedule space (what BEAM searches): every schedule a search can reach
computes the same contraction (checked against NumPy in float64), the moves stay inside what
the template and the register file accept, and searched choices reach the lowering as data."""
from __future__ import annotations

import numpy as np
import pytest

from fgrad.backends import cpu
from fgrad.lower import contraction as C, convolution
from fgrad.lower import gemm_schedule as S
from fgrad.lower import kernel as K

f32 = K.float32
MATMUL = (((1,), (0,)), ((), ()))


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def dot_tunable(lshape, rshape, dims, epilogue=None, epilogue_buffers=(), choices=None, vector_bytes=64,
                threads=2):
    """The contraction's TunableGemm (as the lowering records it) and its default plan."""
    lhs, rhs = K.Buffer("lhs", f32, lshape), K.Buffer("rhs", f32, rshape)
    out_shape = _dot_shape(lshape, rshape, dims)
    out = K.Buffer("out", f32, out_shape)
    met = []
    plan = C.dot_general("dot", lhs, rhs, out, dims, epilogue=epilogue, epilogue_buffers=epilogue_buffers,
                         vector_bytes=vector_bytes, threads=threads, tuning=S.GemmTuning(choices or {}, met))
    return met, plan, (lhs, rhs, *epilogue_buffers)


def _dot_shape(lshape, rshape, dims):
    (lc, rc), (lb, rb) = dims
    lf = [d for d in range(len(lshape)) if d not in lc + lb]
    rf = [d for d in range(len(rshape)) if d not in rc + rb]
    return tuple([lshape[d] for d in lb] + [lshape[d] for d in lf] + [rshape[d] for d in rf])


def run_schedules(tunable, schedules, inputs, data):
    """Every schedule's result, all computed by one compiled program (as BEAM builds it)."""
    outs, steps = [], []
    for k, schedule in enumerate(schedules):
        out = K.Buffer(f"s{k}_out", tunable.output.dtype, tunable.output.shape)
        steps += tunable.build(schedule, f"s{k}", out).steps
        outs.append(out)
    program = K.Program("space", tuple(inputs), tuple(outs), tuple(steps))
    return cpu.compile_program(program)(*data)


def reachable(tunable, depth=2):
    """The default and every schedule within ``depth`` moves of it."""
    frontier = {S.canonical(tunable.problem, tunable.default)}
    seen = set(frontier)
    for _ in range(depth):
        frontier = {n for s in frontier for n in S.neighbours(tunable.problem, s)} - seen
        seen |= frontier
    return sorted(seen, key=lambda s: s.describe())


def test_every_reachable_schedule_computes_the_matmul_with_its_epilogue():
    m, n, k = 45, 70, 97
    bias = K.Buffer("bias", f32, (n,))
    p_bias = C.param(bias)
    epilogue = lambda v, idx: K.maximum(v + p_bias[idx[1]], K.Const(0.0, f32))
    met, _, inputs = dot_tunable((m, k), (k, n), MATMUL, epilogue, (bias,))
    (tunable,) = met
    schedules = reachable(tunable, depth=1)
    assert len(schedules) > 10
    x, y, b = rand((m, k), 0), rand((k, n), 1), rand((n,), 2)
    expected = np.maximum(x.astype(np.float64) @ y + b, 0)
    for schedule, got in zip(schedules, run_schedules(tunable, schedules, inputs, [x, y, b])):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=schedule.describe())


@pytest.mark.parametrize("layout", ["tn", "nt"])
def test_two_moves_from_the_default_on_transposed_layouts(layout):
    m, n, k = 33, 40, 64
    lshape = (k, m) if layout[0] == "t" else (m, k)
    rshape = (n, k) if layout[1] == "t" else (k, n)
    dims = (((0,) if layout[0] == "t" else (1,), (1,) if layout[1] == "t" else (0,)), ((), ()))
    met, _, inputs = dot_tunable(lshape, rshape, dims)
    (tunable,) = met
    schedules = reachable(tunable, depth=2)
    x, y = rand(lshape, 3), rand(rshape, 4)
    xm = x.T if layout[0] == "t" else x
    ym = y.T if layout[1] == "t" else y
    expected = xm.astype(np.float64) @ ym
    for schedule, got in zip(schedules, run_schedules(tunable, schedules, inputs, [x, y])):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=schedule.describe())


def test_conv_schedules_with_a_weight_shared_by_all_batches():
    """A convolution's A (the weight) is packed once for every image (``batch_of``); forcing B's
    per-tile packing, splits and other tiles must keep each image's own columns."""
    n, c, h, o = 4, 6, 10, 8
    x, w, out = K.Buffer("x", f32, (n, c, h, h)), K.Buffer("w", f32, (o, c, 3, 3)), K.Buffer("o", f32, (n, o, 8, 8))
    met = []
    convolution.conv("cv", x, w, out, window_strides=(1, 1), padding=((0, 0), (0, 0)), tuning=S.GemmTuning({}, met))
    (tunable,) = met
    schedules = reachable(tunable, depth=1)
    xv, wv = rand((n, c, h, h), 5), rand((o, c, 3, 3), 6)
    cols = np.lib.stride_tricks.sliding_window_view(xv.astype(np.float64), (3, 3), axis=(2, 3))
    expected = np.einsum("nchwij,ocij->nohw", cols, wv.astype(np.float64))
    for schedule, got in zip(schedules, run_schedules(tunable, schedules, (x, w), [xv, wv])):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=schedule.describe())


def test_batched_schedules():
    dims = (((2,), (1,)), ((0,), (0,)))
    met, _, inputs = dot_tunable((3, 20, 48), (3, 48, 50), dims)
    (tunable,) = met
    schedules = reachable(tunable, depth=1)
    x, y = rand((3, 20, 48), 7), rand((3, 48, 50), 8)
    expected = np.matmul(x.astype(np.float64), y)
    for schedule, got in zip(schedules, run_schedules(tunable, schedules, inputs, [x, y])):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=schedule.describe())


@pytest.mark.parametrize("vector_bytes", [16, 32, 64])
def test_moves_stay_valid_canonical_and_inside_the_register_file(vector_bytes):
    met, _, _ = dot_tunable((300, 500), (500, 90), MATMUL, vector_bytes=vector_bytes)
    (tunable,) = met
    problem = tunable.problem
    registers = 32 if vector_bytes >= 64 else 16
    for schedule in reachable(tunable, depth=2):
        assert S.valid(problem, schedule), schedule
        assert S.canonical(problem, schedule) == schedule
        cfg = schedule.config
        if cfg is not None:     # accumulators, B's vectors and A's broadcast
            vectors = cfg.nr // cfg.lanes
            assert cfg.mr * vectors + vectors + 1 <= registers, schedule
        assert schedule not in S.neighbours(problem, schedule)


def test_canonical_clamps_blocks_to_the_problem():
    problem = S.GemmProblem(1, 20, 40, 30, np.dtype(np.float32), 64, 2)
    big = S.GemmSchedule(False, S.GemmConfig(8, 32, 1000, 800, 6400, 16))
    assert S.canonical(problem, big).config == S.GemmConfig(8, 32, 30, 24, 64, 16)


@pytest.mark.parametrize("bad", [
    S.GemmSchedule(False, S.GemmConfig(8, 24, 64, 64, 48, 16)),    # nr not whole vectors
    S.GemmSchedule(False, S.GemmConfig(8, 32, 64, 60, 64, 16)),    # mc not whole tiles
    S.GemmSchedule(False, S.GemmConfig(8, 32, 64, 64, 48, 16)),    # nc not whole tiles
    S.GemmSchedule(False, S.GemmConfig(8, 16, 64, 64, 64, 8)),     # another SIMD width
    S.GemmSchedule(False, S.GemmConfig(8, 32, 0, 64, 64, 16)),     # an empty k block
    S.GemmSchedule(False, S.GemmConfig(8, 32, 64, 64, 64, 16), splits=31),   # more slices than k
], ids=["nr", "mc", "nc", "lanes", "kc", "splits"])
def test_invalid_choices_are_refused_and_the_lowering_keeps_its_default(bad):
    problem = S.GemmProblem(1, 64, 64, 30, np.dtype(np.float32), 64, 2)
    assert not S.valid(problem, bad)
    met, default_plan, _ = dot_tunable((64, 30), (30, 64), MATMUL)
    key = met[0].key
    _, chosen_plan, _ = dot_tunable((64, 30), (30, 64), MATMUL, choices={key: bad})
    assert [K.format_kernel(k) for k in chosen_plan.kernels] == [K.format_kernel(k) for k in default_plan.kernels]


def test_a_choice_reaches_the_lowering_by_its_problem_key():
    met, default_plan, _ = dot_tunable((64, 300), (300, 64), MATMUL)
    (tunable,) = met
    split = S.GemmSchedule(False, S.GemmConfig(8, 32, 64, 64, 64, 16), splits=3)
    _, plan, _ = dot_tunable((64, 300), (300, 64), MATMUL, choices={tunable.key: split})
    assert any(k.name.endswith("_split_gemm") for k in plan.kernels)
    assert not any("_split" in k.name for k in default_plan.kernels)
    unpacked = S.GemmSchedule(False)
    _, plan, _ = dot_tunable((64, 300), (300, 64), MATMUL, choices={tunable.key: unpacked})
    assert [k.name for k in plan.kernels] == ["dot_small"]
    # another problem (other sizes) ignores the choice
    _, other, _ = dot_tunable((64, 301), (301, 64), MATMUL, choices={tunable.key: unpacked})
    assert "dot_small" not in [k.name for k in other.kernels]


def test_problem_key_names_structure_not_buffer_names_nor_epilogue():
    def key(lname, trans=False, epilogue=None):
        lhs, rhs = K.Buffer(lname, f32, (300, 64) if trans else (64, 300)), K.Buffer("r", f32, (300, 64))
        met = []
        dims = (((0,), (0,)), ((), ())) if trans else MATMUL
        C.dot_general("d", lhs, rhs, K.Buffer("o", f32, (64, 64)), dims, epilogue=epilogue,
                      tuning=S.GemmTuning({}, met))
        return met[0].key
    relu = lambda v, idx: K.maximum(v, K.Const(0.0, f32))
    assert key("a") == key("b") == key("a", epilogue=relu)
    assert key("a") != key("a", trans=True)


def test_small_contractions_are_not_recorded():
    met, _, _ = dot_tunable((8, 16), (16, 8), MATMUL)
    assert met == [] and 8 * 16 * 8 < C.MIN_TUNED_MACS


def test_json_round_trip_and_malformed_entries():
    for schedule in (S.GemmSchedule(True), S.GemmSchedule(False, S.GemmConfig(8, 32, 64, 64, 64, 16), 2, True)):
        assert S.GemmSchedule.from_json(schedule.to_json()) == schedule
    good = S.GemmSchedule(False, S.GemmConfig(8, 32, 64, 64, 64, 16)).to_json()
    for bad in ({**good, "config": [8, 32, 64]}, {**good, "splits": 0}, {**good, "local_b": "yes"},
                {**good, "extra": 1}, [1, 2], {**good, "config": [8, 32, 64, 64, 64, True]}):
        with pytest.raises(ValueError, match="schedule"):
            S.GemmSchedule.from_json(bad)


def test_default_config_is_the_old_heuristic():
    """``choose_config`` kept its tiling (BEAM starts from it): for m = 1600 on 512-bit SIMD,
    14-row tiles (least padding within 2%), 115 row panels in 6 blocks (a multiple of the 2
    threads) of 20 panels, one k block, one 32-column panel."""
    assert C.choose_config(np.float32, 1600, 32, 128, 1, 64, 2) == S.GemmConfig(14, 32, 128, 280, 32, 16)
    assert C.choose_config(np.float32, 100, 70, 1000, 1, 32, 1) == S.GemmConfig(6, 16, 334, 102, 80, 8)


@pytest.mark.parametrize("n, one_vector", [(10, True), (17, False), (33, True), (48, True), (65, True),
                                           (96, False), (100, True), (112, True), (127, False), (128, False), (500, False)])
def test_skinny_products_take_one_vector_tiles_where_two_pad_more(n, one_vector):
    """On 512-bit SIMD, fewer than 8 vectors of columns whose two-vector panels pad n at least
    10% more than one-vector panels get 8 x 1-vector tiles (n = 65: 96 columns against 80);
    n = 17 pads to 32 either way and keeps the 14 x 2 tile. Narrower SIMD never does."""
    cfg = C.choose_config(np.float32, 2048, n, 256, 1, 64, 1)
    assert (cfg.mr, cfg.nr) == ((8, 16) if one_vector else (14, 32))
    assert C.choose_config(np.float32, 2048, n, 256, 1, 32, 1).nr == 16


@pytest.mark.parametrize("m, n, k", [(200, 65, 128), (37, 10, 300), (96, 48, 1024)])
def test_one_vector_tiles_compute_the_product(m, n, k):
    """``a @ b.T`` with a skinny b takes the 8 x 1-vector tile (A read in place, not transposed)
    and equals NumPy's product, ragged rows and columns included."""
    met, _, inputs = dot_tunable((m, k), (n, k), (((1,), (1,)), ((), ())), threads=1)
    (tunable,) = met
    assert (tunable.default.config.mr, tunable.default.config.nr) == (8, 16) and not tunable.default.transpose
    x, y = rand((m, k), 5), rand((n, k), 6)
    (got,) = run_schedules(tunable, [tunable.default], inputs, [x, y])
    np.testing.assert_allclose(got, x.astype(np.float64) @ y.T.astype(np.float64), rtol=1e-4, atol=1e-3)


def test_rows_read_in_place_never_overfill_an_l1_set():
    """A read where it lies, its rows 4 KiB apart (k = 1024 float32): every row of a 14-row tile
    falls in one L1 set of 8 ways, so the heuristics take 8 rows (1024^3 on Zen 4: 80 -> 107
    GFLOP/s, 1 thread). Other strides keep the tile that pads least."""
    assert S.rows_per_l1_set(14, 4096) == 14 and S.rows_per_l1_set(14, 8192) == 14
    assert S.rows_per_l1_set(14, 2048) == 7 and S.rows_per_l1_set(14, 512) == 2
    assert S.register_rows(1024, 64, a_row_bytes=4096) == 8
    assert S.register_rows(1024, 64, a_row_bytes=1024 * 4 + 64) == 14
    assert S.register_rows(1024, 64) == 14 and S.register_rows(1024, 32, a_row_bytes=4096) == 6   # AVX2: 6 <= 8 ways
    met, _, inputs = dot_tunable((1024, 1024), (1024, 64), MATMUL)
    (tunable,) = met
    assert tunable.default.config.mr == 8 and not tunable.default.transpose
    x, y = rand((1024, 1024), 3), rand((1024, 64), 4)
    (got,) = run_schedules(tunable, [tunable.default], inputs, [x, y])
    np.testing.assert_allclose(got, x.astype(np.float64) @ y, rtol=1e-4, atol=1e-3)
    met, _, _ = dot_tunable((1024, 1000), (1000, 64), MATMUL)
    assert met[0].default.config.mr == 14
