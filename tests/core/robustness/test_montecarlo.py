"""Trade Monte Carlo (:mod:`cryptoalgo_core.robustness.montecarlo`): known answers, path structure, seeding, and
agreement with an independent plain-numpy reference.

The reference (``_ref_stats``) compounds equity directly with ``np.cumprod`` over materialised paths (the module
works in log equity inside a numba loop and never stores paths); ``_ref_paths`` draws its paths with numpy's
``Generator.integers`` / ``Generator.permuted`` instead of the module's raw-word mapping.

Monte Carlo bands: every test uses fixed seeds, so the suite is deterministic. Each statistical band is stated with
the probability that a correct implementation falls outside it for a fresh seed: the "99 %" bands of the ruin tests
(z = 2.576, 1 % each) and the z = 4 bands of the reference comparison (6e-5 each, about 2e-3 for all of them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryptoalgo_core.robustness import montecarlo as mc
from cryptoalgo_core.robustness.montecarlo import monte_carlo, trade_paths

METHOD_BLOCKS = [("bootstrap", 1), ("bootstrap", 7), ("reshuffle", 1)]
Z99 = 2.5758293035489004  # two-sided 99 % normal quantile
Z4 = 4.0

# ----------------------------------------------------------------------------------------------- reference


def _ref_stats(paths: np.ndarray, ruin_floor: float) -> dict[str, np.ndarray]:
    """Per-path statistics by direct compounding: equity from 1.0, peak including the start."""
    eq = np.cumprod(1.0 + paths, axis=1)
    peak = np.maximum(1.0, np.maximum.accumulate(eq, axis=1))
    return {
        "mdd": (1.0 - eq / peak).max(axis=1),
        "ruin": (eq < ruin_floor).any(axis=1),
        "final": eq[:, -1] - 1.0,
    }


def _ref_paths(r: np.ndarray, n_paths: int, method: str, block: int, seed: int) -> np.ndarray:
    """Independent path draws with numpy's Generator (a different random stream and construction)."""
    rng = np.random.default_rng(seed)
    n = r.shape[0]
    if method == "reshuffle":
        idx = rng.permuted(np.tile(np.arange(n), (n_paths, 1)), axis=1)
    else:
        m = -(-n // block)
        starts = rng.integers(0, n, size=(n_paths, m))
        idx = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_paths, m * block)[:, :n]
    return r[idx]


def _index_of(r: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """Trade indices of materialised paths (``r`` must have distinct values)."""
    order = np.argsort(r)
    pos = np.searchsorted(r[order], paths)
    idx = order[pos]
    np.testing.assert_array_equal(r[idx], paths)
    return idx


def _mixed(n: int, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.004, 0.05, n)


# ----------------------------------------------------------------------------------------------- known answers


@pytest.mark.parametrize(("method", "block"), METHOD_BLOCKS)
def test_all_positive_trades_never_draw_down(method: str, block: int) -> None:
    r = np.random.default_rng(3).uniform(0.0, 0.05, 40)
    r[5] = 0.0  # a flat trade is not a drawdown either
    res = monte_carlo(r, n_paths=2000, method=method, block=block, seed=1)
    assert res["max_drawdown"] == {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    assert res["prob_ruin"] == 0.0
    assert res["prob_loss"] == 0.0
    assert res["final_return"]["p5"] > 0.0


def test_reshuffle_keeps_final_return_and_varies_drawdown() -> None:
    r = _mixed(60)
    expected = float(np.prod(1.0 + r) - 1.0)
    res = monte_carlo(r, n_paths=3000, method="reshuffle", seed=5)
    for key in ("p5", "p50", "p95", "mean"):
        assert res["final_return"][key] == pytest.approx(expected, rel=1e-12, abs=1e-13)
    assert res["prob_loss"] == (1.0 if expected < 0 else 0.0)
    assert res["max_drawdown"]["p99"] > res["max_drawdown"]["p50"] + 0.02

    paths = trade_paths(r, n_paths=500, method="reshuffle", seed=5)
    np.testing.assert_array_equal(np.sort(paths, axis=1), np.broadcast_to(np.sort(r), paths.shape))
    ref = _ref_stats(paths, 0.5)
    np.testing.assert_allclose(ref["final"], expected, rtol=1e-12, atol=1e-13)
    assert np.ptp(ref["mdd"]) > 0.05
    assert len({tuple(row) for row in _index_of(r, paths)}) == 500  # all orderings distinct


def _ruin_trades(n: int = 50) -> np.ndarray:
    # one -60 % trade among +0.1 % gains: 0.4 * 1.001**49 < 0.5, so a path is ruined at floor 0.5 exactly when
    # it contains the big loss, and then it also ends at a loss; without it every path ends in profit
    r = np.full(n, 0.001)
    r[17] = -0.6
    return r


def test_single_big_loss_bootstrap_ruin_equals_share_of_paths_containing_it() -> None:
    r, n, n_paths = _ruin_trades(), 50, 20_000
    res = monte_carlo(r, n_paths=n_paths, method="bootstrap", seed=2)
    # exactly the share of the (same-seed) paths that contain the trade
    contains = (trade_paths(r, n_paths=n_paths, method="bootstrap", seed=2) == -0.6).any(axis=1)
    assert res["prob_ruin"] == contains.mean()
    assert res["prob_loss"] == res["prob_ruin"]
    # and that share is 1 - (1 - 1/n)^n within the binomial 99 % band
    p = 1.0 - (1.0 - 1.0 / n) ** n
    assert abs(res["prob_ruin"] - p) <= Z99 * math.sqrt(p * (1.0 - p) / n_paths)

    # two copies are needed to fall below 0.3 (0.4**2 = 0.16): P(>= 2) = 1 - P(0) - P(1)
    res3 = monte_carlo(r, n_paths=n_paths, method="bootstrap", seed=2, ruin_floor=0.3)
    p2 = 1.0 - (1.0 - 1.0 / n) ** n - (1.0 - 1.0 / n) ** (n - 1)
    assert abs(res3["prob_ruin"] - p2) <= Z99 * math.sqrt(p2 * (1.0 - p2) / n_paths)
    assert res3["prob_ruin"] == ((trade_paths(r, n_paths=n_paths, seed=2) == -0.6).sum(axis=1) >= 2).mean()


def test_single_big_loss_block_bootstrap_and_reshuffle() -> None:
    r, n_paths = _ruin_trades(), 20_000
    # block 5: 10 full blocks, each covering trade 17 with probability 5/50, independently
    res = monte_carlo(r, n_paths=n_paths, method="bootstrap", block=5, seed=4)
    p = 1.0 - 0.9**10
    assert abs(res["prob_ruin"] - p) <= Z99 * math.sqrt(p * (1.0 - p) / n_paths)
    # every permutation contains it
    res = monte_carlo(r, n_paths=1000, method="reshuffle", seed=4)
    assert res["prob_ruin"] == 1.0
    assert res["prob_loss"] == 1.0


@pytest.mark.parametrize(("method", "block"), [*METHOD_BLOCKS, ("bootstrap", 20)])
def test_repeated_trade_gives_the_hand_computed_answer(method: str, block: int) -> None:
    # every path is 20 x (-10 %): equity 0.9**k, peak 1.0 (the start), max drawdown 1 - 0.9**20 = 0.878423...
    r = np.full(20, -0.1)
    res = monte_carlo(r, n_paths=200, method=method, block=block, seed=9)
    mdd = 1.0 - 0.9**20
    assert mdd == pytest.approx(0.8784233454094307, abs=1e-15)
    for v in res["max_drawdown"].values():
        assert v == pytest.approx(mdd, rel=1e-13)
    for v in res["final_return"].values():
        assert v == pytest.approx(0.9**20 - 1.0, rel=1e-13)
    assert res["prob_loss"] == 1.0
    assert res["prob_ruin"] == 1.0  # 0.9**20 = 0.1216 < 0.5 (already 0.9**7 = 0.478)
    assert monte_carlo(r, n_paths=200, method=method, block=block, ruin_floor=0.12)["prob_ruin"] == 0.0


SEQ = np.array([0.1, -0.2, 0.05, -0.1, 0.3])
# equity 1.1, 0.88, 0.924, 0.8316, 1.08108; peak 1.1; trough 0.8316 -> max drawdown 1 - 0.8316 / 1.1 = 0.244.
# Its rotations (start 1..4) have max drawdowns 0.244, 0.2, 0.2, 0.244 and all end at 1.08108.
SEQ_MDD = 0.244
SEQ_FINAL = 0.08108


def test_reference_reproduces_the_hand_computed_sequence() -> None:
    ref = _ref_stats(SEQ[None, :], 0.5)
    assert ref["mdd"][0] == pytest.approx(SEQ_MDD, abs=1e-14)
    assert ref["final"][0] == pytest.approx(SEQ_FINAL, abs=1e-14)
    rot = _ref_stats(np.stack([np.roll(SEQ, -s) for s in range(5)]), 0.5)
    np.testing.assert_allclose(rot["mdd"], [0.244, 0.244, 0.2, 0.2, 0.244], atol=1e-14)


def test_block_of_full_length_gives_rotations() -> None:
    n_paths = 1000
    paths = trade_paths(SEQ, n_paths=n_paths, method="bootstrap", block=5, seed=3)
    rotations = {tuple(np.roll(SEQ, -s)) for s in range(5)}
    seen = {tuple(row) for row in paths}
    assert seen == rotations  # every row is a rotation, and all 5 occur in 1000 paths
    res = monte_carlo(SEQ, n_paths=n_paths, method="bootstrap", block=5, seed=3, quantiles=(0.0, 1.0))
    for v in res["final_return"].values():
        assert v == pytest.approx(SEQ_FINAL, rel=1e-12)
    assert res["max_drawdown"]["p0"] == pytest.approx(0.2, rel=1e-12)
    assert res["max_drawdown"]["p100"] == pytest.approx(SEQ_MDD, rel=1e-12)

    r = _mixed(37)
    res = monte_carlo(r, n_paths=500, method="bootstrap", block=37, seed=8)
    expected = float(np.prod(1.0 + r) - 1.0)
    assert res["final_return"]["p5"] == pytest.approx(expected, rel=1e-12)
    assert res["final_return"]["p95"] == pytest.approx(expected, rel=1e-12)


def test_block_bootstrap_paths_are_circular_runs() -> None:
    n, b = 30, 4  # 7 full blocks and a last one of 2
    r = _mixed(n, seed=21)
    idx = _index_of(r, trade_paths(r, n_paths=300, method="bootstrap", block=b, seed=6))
    starts = idx[:, ::b]
    for t in range(b):
        col = idx[:, t::b]
        np.testing.assert_array_equal(col, (starts[:, : col.shape[1]] + t) % n)
    assert (idx[:, ::b] > n - b).any()  # some blocks wrap around the end
    # the block starts are uniform over all n trades
    counts = np.bincount(starts.ravel(), minlength=n)
    assert counts.min() > 0


def test_seed_maps_onto_pcg64_raw_words() -> None:
    # documented mapping: path p uses raw words p*k .. p*k+k-1 of PCG64(seed), u = (x >> 11) * 2**-53
    n, seed = 13, 77
    r = _mixed(n, seed=2)
    raw = np.random.PCG64(seed).random_raw(3 * n)
    u = (raw >> np.uint64(11)).astype(np.float64) * 2.0**-53
    np.testing.assert_array_equal(u, np.random.Generator(np.random.PCG64(seed)).random(3 * n))
    boot = trade_paths(r, n_paths=3, method="bootstrap", seed=seed)
    np.testing.assert_array_equal(boot, r[np.floor(u * n).astype(int)].reshape(3, n))

    k = n - 1
    shuf = trade_paths(r, n_paths=3, method="reshuffle", seed=seed)
    uu = (np.random.PCG64(seed).random_raw(3 * k) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    for p in range(3):
        perm = list(range(n))
        for i in range(n - 1, 0, -1):
            j = int(uu[p * k + n - 1 - i] * (i + 1))
            perm[i], perm[j] = perm[j], perm[i]
        np.testing.assert_array_equal(shuf[p], r[perm])


# ----------------------------------------------------------------------------------------------- properties


@pytest.mark.parametrize(("method", "block"), METHOD_BLOCKS)
def test_quantiles_are_monotone_and_in_range(method: str, block: int) -> None:
    r = _mixed(80, seed=31)
    qs = (0.05, 0.5, 0.9, 0.95, 0.99, 0.999)
    res = monte_carlo(r, n_paths=4000, method=method, block=block, seed=3, quantiles=qs)
    assert list(res["max_drawdown"]) == ["p5", "p50", "p90", "p95", "p99", "p99.9"]
    vals = list(res["max_drawdown"].values())
    assert vals == sorted(vals)
    assert 0.0 <= vals[0] and vals[-1] < 1.0
    fr = res["final_return"]
    assert -1.0 < fr["p5"] <= fr["p50"] <= fr["p95"]
    default = monte_carlo(r, n_paths=4000, method=method, block=block, seed=3)
    d = default["max_drawdown"]
    assert list(d) == ["p50", "p95", "p99"]
    assert d["p50"] <= d["p95"] <= d["p99"]
    assert d["p95"] == res["max_drawdown"]["p95"]
    assert 0.0 <= default["prob_ruin"] <= 1.0 and 0.0 <= default["prob_loss"] <= 1.0
    assert (
        default["n_paths"],
        default["n_trades"],
        default["method"],
        default["block"],
        default["seed"],
    ) == (
        4000,
        80,
        method,
        block,
        3,
    )
    assert default["ruin_floor"] == 0.5


@pytest.mark.parametrize(("method", "block"), METHOD_BLOCKS)
def test_reproducible_by_seed(method: str, block: int) -> None:
    r = _mixed(50, seed=41)
    a = monte_carlo(r, n_paths=500, method=method, block=block, seed=123)
    b = monte_carlo(r, n_paths=500, method=method, block=block, seed=123)
    c = monte_carlo(r, n_paths=500, method=method, block=block, seed=124)
    assert a == b
    assert a["max_drawdown"] != c["max_drawdown"]
    if method == "bootstrap":
        assert a["final_return"] != c["final_return"]

    p1 = trade_paths(r, n_paths=200, method=method, block=block, seed=123)
    np.testing.assert_array_equal(p1, trade_paths(r, n_paths=200, method=method, block=block, seed=123))
    assert not np.array_equal(p1, trade_paths(r, n_paths=200, method=method, block=block, seed=124))
    # path p does not depend on n_paths
    np.testing.assert_array_equal(p1[:50], trade_paths(r, n_paths=50, method=method, block=block, seed=123))


def test_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    r = _mixed(45, seed=51)
    before = [monte_carlo(r, n_paths=300, method=m, block=b, seed=7) for m, b in METHOD_BLOCKS]
    paths_before = trade_paths(r, n_paths=300, block=7, seed=7)
    monkeypatch.setattr(mc, "_CHUNK_WORDS", 100)  # 2 bootstrap paths or 7 block paths or 2 reshuffles a chunk
    after = [monte_carlo(r, n_paths=300, method=m, block=b, seed=7) for m, b in METHOD_BLOCKS]
    assert before == after
    np.testing.assert_array_equal(paths_before, trade_paths(r, n_paths=300, block=7, seed=7))


@pytest.mark.parametrize(("method", "block"), METHOD_BLOCKS)
def test_statistics_equal_cumprod_over_the_same_paths(method: str, block: int) -> None:
    # exact consistency: monte_carlo's per-path statistics are those of trade_paths' rows
    r = _mixed(70, seed=61)
    n_paths, floor = 3000, 0.8
    res = monte_carlo(r, n_paths=n_paths, method=method, block=block, seed=13, ruin_floor=floor)
    ref = _ref_stats(trade_paths(r, n_paths=n_paths, method=method, block=block, seed=13), floor)
    got = [res["max_drawdown"][k] for k in ("p50", "p95", "p99")]
    np.testing.assert_allclose(got, np.quantile(ref["mdd"], [0.5, 0.95, 0.99]), rtol=1e-11, atol=1e-13)
    fr = res["final_return"]
    np.testing.assert_allclose(
        [fr["p5"], fr["p50"], fr["p95"], fr["mean"]],
        [*np.quantile(ref["final"], [0.05, 0.5, 0.95]), ref["final"].mean()],
        rtol=1e-11,
        atol=1e-13,
    )
    assert res["prob_ruin"] == ref["ruin"].mean()
    assert res["prob_loss"] == (ref["final"] < 0).mean()


@pytest.mark.parametrize(("method", "block"), METHOD_BLOCKS)
def test_agrees_with_independent_numpy_reference(method: str, block: int) -> None:
    """Distributional agreement with paths drawn by a different generator and construction.

    Tolerances (z = 4, two-sided, each ~6e-5 for a fresh seed): proportions within
    ``4 sqrt(p (1 - p) (1/N_mc + 1/N_ref))``; the mean final return within ``4 sd sqrt(1/N_mc + 1/N_ref)``; for
    each max-drawdown quantile ``x_q`` of the module, the reference's empirical CDF at ``x_q`` within
    ``4 sqrt(q (1 - q) (1/N_ref + 1/N_mc))`` of ``q`` (a distribution-free check of the quantile).
    """
    r = _mixed(60, seed=71)
    n_mc, n_ref, floor = 20_000, 5_000, 0.8
    qs = (0.5, 0.95, 0.99)
    res = monte_carlo(r, n_paths=n_mc, method=method, block=block, seed=17, ruin_floor=floor, quantiles=qs)
    ref = _ref_stats(_ref_paths(r, n_ref, method, block, seed=99), floor)
    scale = math.sqrt(1.0 / n_mc + 1.0 / n_ref)

    checks = [(res["prob_ruin"], ref["ruin"])]
    if method == "reshuffle":  # every path has the same final return: a loss on all paths or on none
        assert res["prob_loss"] == (ref["final"] < 0).mean() in (0.0, 1.0)
    else:
        checks.append((res["prob_loss"], ref["final"] < 0))
    for got, ref_flags in checks:
        p = (got * n_mc + ref_flags.sum()) / (n_mc + n_ref)
        assert 0.02 < p < 0.98  # the check has power
        assert abs(got - ref_flags.mean()) <= Z4 * math.sqrt(p * (1.0 - p)) * scale

    if method == "reshuffle":
        assert np.ptp(ref["final"]) < 1e-12
        assert res["final_return"]["mean"] == pytest.approx(ref["final"].mean(), rel=1e-12)
    else:
        sd = ref["final"].std(ddof=1)
        assert abs(res["final_return"]["mean"] - ref["final"].mean()) <= Z4 * sd * scale
        for key, q in (("p5", 0.05), ("p50", 0.5), ("p95", 0.95)):
            cdf = (ref["final"] <= res["final_return"][key]).mean()
            assert abs(cdf - q) <= Z4 * math.sqrt(q * (1.0 - q)) * scale

    for q in qs:
        cdf = (ref["mdd"] <= res["max_drawdown"][f"p{100 * q:g}"]).mean()
        assert abs(cdf - q) <= Z4 * math.sqrt(q * (1.0 - q)) * scale


def test_input_is_copied_and_lists_accepted() -> None:
    r = _mixed(25, seed=81)
    keep = r.copy()
    a = monte_carlo(r, n_paths=100, seed=1)
    np.testing.assert_array_equal(r, keep)
    assert monte_carlo(list(r), n_paths=100, seed=1) == a
    assert trade_paths([0.1], n_paths=3, method="reshuffle").tolist() == [[0.1], [0.1], [0.1]]
    single = monte_carlo([-0.2], n_paths=100)
    assert single["max_drawdown"]["p50"] == pytest.approx(0.2, rel=1e-14)
    assert single["final_return"]["mean"] == pytest.approx(-0.2, rel=1e-14)


# ----------------------------------------------------------------------------------------------- validation

OK = np.array([0.01, -0.02, 0.03, 0.0, 0.015])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trade_returns": []}, "empty"),
        ({"trade_returns": [0.1, np.nan]}, "non-finite"),
        ({"trade_returns": [0.1, np.inf]}, "non-finite"),
        ({"trade_returns": [0.1, -1.0]}, r"> -1"),
        ({"trade_returns": [0.1, -1.5]}, r"> -1"),
        ({"trade_returns": [[0.1, 0.2]]}, "1-d"),
        ({"trade_returns": ["a", "b"]}, "real numbers"),
        ({"n_paths": 99}, "n_paths must be >= 100"),
        ({"n_paths": 1000.0}, "n_paths must be an integer"),
        ({"n_paths": True}, "n_paths must be an integer"),
        ({"method": "jackknife"}, "unknown method"),
        ({"block": 0}, "block must be >= 1"),
        ({"block": 6}, "block must be <= n_trades = 5"),
        ({"method": "reshuffle", "block": 2}, "reshuffle"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"ruin_floor": 0.0}, r"ruin_floor must lie in \(0, 1\)"),
        ({"ruin_floor": 1.0}, r"ruin_floor must lie in \(0, 1\)"),
        ({"ruin_floor": 1.5}, r"ruin_floor must lie in \(0, 1\)"),
        ({"ruin_floor": math.nan}, r"ruin_floor must lie in \(0, 1\)"),
        ({"ruin_floor": "0.5"}, "ruin_floor must be a real number"),
        ({"quantiles": ()}, "quantiles is empty"),
        ({"quantiles": (0.5, 1.2)}, r"quantiles must lie in \[0, 1\]"),
        ({"quantiles": (0.5, 0.5)}, "duplicates"),
    ],
)
def test_monte_carlo_rejects_bad_input(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"trade_returns": OK, "n_paths": 100, **kwargs}
    with pytest.raises(ValueError, match=match):
        monte_carlo(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trade_returns": []}, "empty"),
        ({"n_paths": 0}, "n_paths must be >= 1"),
        ({"method": "permute"}, "unknown method"),
        ({"block": 6}, "block must be <= n_trades"),
    ],
)
def test_trade_paths_rejects_bad_input(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"trade_returns": OK, "n_paths": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        trade_paths(**args)  # type: ignore[arg-type]


def test_bootstrap_horizon_paths_match_their_statistics() -> None:
    """A horizon of L trades: each path draws L trades from all n; monte_carlo's statistics are those of the
    paths trade_paths materialises with the same horizon, and horizon = n is the default."""
    r = np.random.default_rng(8).normal(0.002, 0.02, 300)
    paths = trade_paths(r, n_paths=500, seed=4, horizon=60)
    assert paths.shape == (500, 60) and np.isin(paths, r).all()
    eq = np.cumprod(1.0 + paths, axis=1)
    peak = np.maximum.accumulate(np.maximum(eq, 1.0), axis=1)
    mdd = (1.0 - eq / peak).max(axis=1)
    res = monte_carlo(r, n_paths=500, seed=4, horizon=60, ruin_floor=0.9)
    assert res["horizon"] == 60 and res["n_trades"] == 300
    assert res["max_drawdown"]["p95"] == pytest.approx(float(np.quantile(mdd, 0.95)), rel=1e-9)
    assert res["prob_ruin"] == pytest.approx(float((eq < 0.9).any(axis=1).mean()))
    assert monte_carlo(r, n_paths=200, seed=4, horizon=300) == monte_carlo(r, n_paths=200, seed=4)
    # a shorter horizon draws smaller drawdowns on a losing-tail series
    assert res["max_drawdown"]["p95"] < monte_carlo(r, n_paths=500, seed=4)["max_drawdown"]["p95"]
    with pytest.raises(ValueError, match="horizon applies to method='bootstrap' only"):
        monte_carlo(r, n_paths=200, method="reshuffle", horizon=60)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        monte_carlo(r, n_paths=200, horizon=0)
