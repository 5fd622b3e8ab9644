"""Robustness stage: `robustness_report` per coin (blocking `robustness_gate`), then the unpartitioned
`portfolio_readiness` (blocking `portfolio_gate`) and `deployment_checklist`; jobs validate_job, portfolio_job
and checklist_job.

Files under data/runs/<cohort>/<COIN>/: robustness.json (full) or robustness_screen.json (screen),
cv_daily.csv, cv_trades.csv, cv_exposure.parquet, robustness.html (show); under data/runs/<cohort>/:
portfolio.json, index.html; data/checklist.json (the latest checklist, any cohort).
"""


import datetime as dt
from typing import Any

import dagster as dg

from cryptoalgo_assets.checks import to_result
from cryptoalgo_assets.defs.features import COINS
from cryptoalgo_assets.defs.optimize import MODEL_FAMILY, holdout_evaluation, study_data
from cryptoalgo_core.checks import CheckOutcome, Severity
from cryptoalgo_core.errors import ConfigError
from resources.dagster_resources import ArtifactsResource, MarketStoreResource, ProjectConfigResource

VALIDATE_JOB = "validate_job"
PORTFOLIO_JOB = "portfolio_job"
CHECKLIST_JOB = "checklist_job"
MODES = ("full", "screen")


class ValidateConfig(dg.Config):
    mode: str = "full"  # full | screen (the launch's paper screen: fewer paths, trials and neighbours)
    show: bool = False  # also write robustness.html (plotly)


def report_name(mode: str) -> str:
    return "robustness.json" if mode == "full" else "robustness_screen.json"


def _study_data(art: Any, store: Any, spec: Any, coin: str, opt: dict[str, Any]) -> tuple[Any, Any]:
    """The study's StudyData and preset, rebuilt; refuses when the research data changed since the study."""
    from cryptoalgo_core.optimize.space import load_preset

    p = opt["preset"]
    try:
        preset = load_preset(p["name"], coin, holdout_days=p["holdout_days"], n_cv_folds=p["n_cv_folds"])
    except ConfigError as exc:
        raise dg.Failure(str(exc)) from exc
    data = study_data(art, store, spec, coin, preset)
    if data.fingerprint != opt["data_fingerprint"] or data.holdout_start != int(opt["holdout_start"]):
        raise dg.Failure(f"{coin}: the research data changed since study {opt['study']} (fingerprint "
                         f"{data.fingerprint[:12]} != {opt['data_fingerprint'][:12]}); re-run the launch")
    if [[f.test_start, f.test_end] for f in data.folds] != opt["folds"]:
        raise dg.Failure(f"{coin}: the preset's folds differ from the study's; re-run the launch")
    return data, preset


def robustness_check_specs() -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(
        "robustness_gate", asset="robustness_report", blocking=True, partitions_def=COINS,
        description="The coin is pilot-ready: every hard gate passes (holdout, cost-adjusted edge, fee/edge, "
                    "Monte Carlo drawdown and ruin, CV consistency, parameter stability, stop-loss share) and "
                    "the tier is PILOT or FULL (evidence: DSR, CSCV probability of OOS loss). ERROR: blocks staging.")]


@dg.asset(
    partitions_def=COINS,
    deps=[holdout_evaluation],
    group_name="robustness",
    kinds={"numba", "json"},
    check_specs=robustness_check_specs(),
    description="Monte Carlo over trades, CV consistency, PSR/DSR with the coin's recorded trial count, MinTRL, "
                "PBO by CSCV over the study's trials, parameter stability, holdout, regimes -> score and tier.",
)
def robustness_report(
    context: dg.AssetExecutionContext,
    config: ValidateConfig,
    market_store: MarketStoreResource,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    from cryptoalgo_core.optimize.cache import PredictionCache
    from cryptoalgo_core.robustness.validate import validate_coin
    from resources.experiments import Tracker

    if config.mode not in MODES:
        raise dg.Failure(f"mode must be one of {MODES}, got {config.mode!r}")
    coin, cohort = context.partition_key, artifacts.cohort_name()
    art, run = artifacts.store(), ("runs", cohort, coin)
    for name in ("optimized_profile.json", "study_trials.json"):
        if not art.path(*run, name).exists():
            raise dg.Failure(f"{coin}: no {name} in cohort {cohort}; run `cryptoalgo launch` first")
    opt = art.read_json(*run, "optimized_profile.json")
    holdout = art.read_json(*run, "holdout.json") if art.path(*run, "holdout.json").exists() else None
    store = market_store.store()
    data, preset = _study_data(art, store, project.coins()[coin], coin, opt)
    gates = project.gates().robustness
    n_trials = Tracker(store.engine).total_trials(coin, MODEL_FAMILY)
    trials = art.read_json(*run, "study_trials.json")["trials"]
    chosen = {"number": opt["chosen_trial"], "params": opt["params"], "objective": opt["objective"]}
    context.log.info(f"{coin}: {config.mode} validation of trial {chosen['number']} ({len(trials)} study trials, "
                     f"{n_trials} recorded for the coin)")
    doc, track = validate_coin(data, preset, trials, chosen, holdout, n_trials, gates, config.mode,
                               PredictionCache(art.path("cache", "predictions", coin)))
    if data.fits:
        context.log.warning(f"{coin}: {data.fits} fold model(s) were not in the prediction cache and were refit")
    doc.update({"cohort": cohort, "study": opt["study"], "data_fingerprint": opt["data_fingerprint"],
                "generated_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    art.write_csv(track.daily, *run, "cv_daily.csv")
    art.write_csv(track.trades, *run, "cv_trades.csv")
    art.write_parquet(track.exposure, *run, "cv_exposure.parquet")
    path = art.write_json(doc, *run, report_name(config.mode))
    md: dict[str, Any] = {"tier": doc["tier"], "score": round(float(doc["score"]), 2), "mode": config.mode,
                          "trials_recorded": n_trials, "path": dg.MetadataValue.path(str(path)),
                          "gates": dg.MetadataValue.md(gates_md(doc["gates"]))}
    for k in ("psr", "dsr", "pbo"):
        v = doc["stats"][k].get("value")
        md[k] = float(v) if v is not None else "n/a"
    boot = doc["monte_carlo"].get("bootstrap") or {}
    md["mc_drawdown_p95"] = float(boot["max_drawdown"]["p95"]) if boot else "n/a"
    md["mc_prob_ruin"] = float(boot["prob_ruin"]) if boot else "n/a"
    if config.show:
        md["report"] = dg.MetadataValue.path(str(write_coin_html(art, cohort, coin, doc, track, gates.seed)))
    failed = ", ".join(doc["failed"]) or "none"
    # the screen only picks who gets the full validation: its verdict warns; the full report's blocks
    sev = Severity.ERROR if config.mode == "full" else Severity.WARN
    outcome = CheckOutcome("robustness_gate", bool(doc["passed"]), sev,
                           f"{coin}: tier {doc['tier']}, score {doc['score']:.1f}; failed gates: {failed}",
                           {"tier": doc["tier"], "score": float(doc["score"]), "mode": config.mode,
                            **{g["gate"]: g["value"] for g in doc["gates"] if isinstance(g["value"], (int, float))}})
    return dg.MaterializeResult(metadata=md, check_results=[to_result(outcome)])


def gates_md(rows: list[dict[str, Any]]) -> str:
    lines = ["| gate | value | threshold | pass |", "|---|---|---|---|"]
    lines += [f"| {g['gate']}{'' if g.get('hard', True) else ' (evidence)'} | {_fmt(g['value'])} | "
              f"{g['threshold']} | {'yes' if g['passed'] else '**no**'} |" for g in rows]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def write_coin_html(art: Any, cohort: str, coin: str, doc: dict[str, Any], track: Any, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    from cryptoalgo_core.optimize.report import plotly_js
    from cryptoalgo_core.robustness.html import robustness_html
    from cryptoalgo_core.robustness.validate import mc_drawdown_sample

    js = art.path("runs", cohort, "plotly.min.js")
    if not js.exists():
        art.write_text(plotly_js(), "runs", cohort, "plotly.min.js")
    eq = pd.DataFrame({"ts": track.daily["day"], "equity": np.cumprod(1.0 + track.daily["ret"].to_numpy(float))})
    page = robustness_html(coin, doc, eq, mc_drawdown_sample(track.trade_returns, 2000, seed), track.calibration)
    return art.write_text(page, "runs", cohort, coin, "robustness.html")


def _coin_docs(art: Any, cohort: str, coins: list[str]) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for c in coins:
        p = art.path("runs", cohort, c, "robustness.json")
        out[c] = art.read_json("runs", cohort, c, "robustness.json") if p.exists() else None
    return out


@dg.asset(
    deps=[robustness_report],
    group_name="robustness",
    kinds={"json"},
    check_specs=[dg.AssetCheckSpec("portfolio_gate", asset="portfolio_readiness", blocking=True,
                                   description="At least min_coins pilot-ready coins; correlation, basket and "
                                               "correlated drawdowns, exposure overlap and risk concentration "
                                               "within gates.yaml limits. ERROR: blocks deployment.")],
    description="Basket of the pilot-ready coins: correlation, basket drawdown (equal-risk or inverse-vol "
                "weights), correlated drawdown windows, regime failures, exposure overlap, risk contributions; "
                "coins that degrade the basket dropped with the reason.",
)
def portfolio_readiness(
    context: dg.AssetExecutionContext,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    import pandas as pd

    from cryptoalgo_core.robustness.evidence import calendar_returns
    from cryptoalgo_core.robustness.portfolio import portfolio_readiness as assess_portfolio
    from cryptoalgo_core.robustness.validate import PASSING_TIERS

    cohort, art = artifacts.cohort_name(), artifacts.store()
    coins = list(project.coins())
    docs = _coin_docs(art, cohort, coins)
    candidates = [c for c, d in docs.items() if d is not None and d.get("tier") in PASSING_TIERS]
    validated = [c for c, d in docs.items() if d is not None]
    returns, exposure = {}, {}
    for c in validated:
        returns[c] = calendar_returns(pd.read_csv(art.path("runs", cohort, c, "cv_daily.csv")))
        e = art.read_parquet("runs", cohort, c, "cv_exposure.parquet")
        exposure[c] = e.drop_duplicates("ts").set_index("ts")["side"]
    regimes = {c: {r["bucket"]: r["net_bps"] for r in (docs[c] or {}).get("regimes", [])} for c in validated}
    gates = project.gates().portfolio
    try:  # no candidate: the core's verdict is "coins 0 < min_coins"
        result = assess_portfolio(pd.DataFrame(returns), candidates, gates,
                                  pd.DataFrame(exposure).fillna(0) if candidates else None, regimes)
    except ValueError as exc:
        raise dg.Failure(f"portfolio: {exc}") from exc
    result.update({"cohort": cohort, "validated": validated, "weighting": gates.weighting})
    path = art.write_json(result, "runs", cohort, "portfolio.json")
    failed = result.get("failed", [])
    desc = (f"basket {', '.join(result['basket']) or '-'}: " +
            ("all conditions pass" if result["passed"] else "fails " + ", ".join(
                f"{c['condition']} {c['value']} (need {c['threshold']})" for c in result["conditions"]
                if not c["passed"])))
    outcome = CheckOutcome("portfolio_gate", bool(result["passed"]), Severity.ERROR, desc,
                           {"basket": ",".join(result["basket"]), "failed": ",".join(failed)})
    context.log.info(f"portfolio {cohort}: {desc}")
    return dg.MaterializeResult(
        metadata={"passed": bool(result["passed"]), "basket": ",".join(result["basket"]) or "-",
                  "candidates": ",".join(candidates) or "-", "path": dg.MetadataValue.path(str(path)),
                  "conditions": dg.MetadataValue.md(_conditions_md(result["conditions"]))},
        check_results=[to_result(outcome)])


def _conditions_md(rows: list[dict[str, Any]]) -> str:
    lines = ["| condition | value | threshold | pass |", "|---|---|---|---|"]
    lines += [f"| {r['condition']} | {r['value']} | {r['threshold']} | {'yes' if r['passed'] else '**no**'} |"
              for r in rows]
    return "\n".join(lines)


@dg.asset(
    deps=[portfolio_readiness],
    group_name="robustness",
    kinds={"json"},
    description="PASS/FAIL per coin with the failed gates and their values, and PASS/FAIL for the portfolio "
                "(data/checklist.json).",
)
def deployment_checklist(
    context: dg.AssetExecutionContext,
    project: ProjectConfigResource,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    from cryptoalgo_core.robustness.checklist import build_checklist
    from cryptoalgo_core.robustness.html import index_html

    cohort, art = artifacts.cohort_name(), artifacts.store()
    coins = list(project.coins())
    docs = _coin_docs(art, cohort, coins)
    portfolio = art.read_json("runs", cohort, "portfolio.json")
    doc = build_checklist(cohort, docs, portfolio, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    art.write_json(doc, "runs", cohort, "checklist.json")
    path = art.write_json(doc, "checklist.json")
    rows = [{"coin": c["coin"], "tier": c["tier"] or "n/a", "score": c["score"],
             "failed_gates": [g["gate"] for g in c["failed_gates"]] or ([c["reason"]] if c["verdict"] == "FAIL"
                                                                         else []),
             "href": f"{c['coin']}/robustness.html"} for c in doc["coins"]]
    index = art.write_text(index_html(rows, portfolio, title=f"robustness — {cohort}"), "runs", cohort, "index.html")
    context.log.info(f"checklist {cohort}: portfolio {doc['verdict']}; " +
                     ", ".join(f"{c['coin']} {c['verdict']}" for c in doc["coins"]))
    return dg.MaterializeResult(metadata={
        "verdict": doc["verdict"], **{c["coin"]: f"{c['verdict']} ({c['reason']})" for c in doc["coins"]},
        "path": dg.MetadataValue.path(str(path)), "index": dg.MetadataValue.path(str(index))})


# portfolio_readiness and deployment_checklist run as two runs (the CLI submits one after the other): a failed
# blocking portfolio_gate skips what is downstream *in its run*, and the checklist must still report the FAIL
checklist_job = dg.define_asset_job(
    CHECKLIST_JOB, selection=dg.AssetSelection.assets(deployment_checklist), executor_def=dg.in_process_executor,
    description="The deployment checklist from the robustness reports and the portfolio readiness.")
validate_job = dg.define_asset_job(
    VALIDATE_JOB, selection=dg.AssetSelection.assets(robustness_report), executor_def=dg.in_process_executor,
    description="One coin's robustness report, score and tier (config mode: full | screen).")
portfolio_job = dg.define_asset_job(
    PORTFOLIO_JOB, selection=dg.AssetSelection.assets(portfolio_readiness),
    executor_def=dg.in_process_executor, description="Portfolio readiness of the pilot-ready coins (blocking gate).")

defs = dg.Definitions(assets=[robustness_report, portfolio_readiness, deployment_checklist],
                      jobs=[validate_job, portfolio_job, checklist_job])

__all__ = ["CHECKLIST_JOB", "PORTFOLIO_JOB", "VALIDATE_JOB", "defs", "report_name"]
