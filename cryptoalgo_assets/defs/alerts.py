"""On-call alerts: sensors that watch failed ERROR asset checks (kill switches, QA, gates) and failed runs and
send through the alerting resource (resources/alerting.py) -- one alert per transition to failing, a resolve
when the check passes again (or the job succeeds again for the same partition). Delivery failures never fail
a sensor: the alert stays in the outbox and is retried on the next evaluation.
"""


from typing import Any

import dagster as dg

from resources.dagster_resources import AlertingResource, ArtifactsResource, MarketStoreResource

BATCH = 500


def check_alert(ev: Any, run_id: str) -> tuple[Any, bool] | None:
    """(Alert, failing) for one check evaluation; None when it cannot page (a WARN failure)."""
    from resources.alerting import Alert

    asset, part = ev.asset_key.to_user_string(), ev.partition or "-"
    failing = not ev.passed
    if failing and ev.severity != dg.AssetCheckSeverity.ERROR:
        return None
    kill = asset == "paper_performance"
    summary = (f"{'KILL SWITCH ' if kill else ''}{asset} {ev.check_name} [{part}] "
               f"{'failed' if failing else 'passes again'}: {(ev.description or '').strip()[:300]}")
    details = {"asset": asset, "check": ev.check_name, "partition": part, "run_id": run_id}
    return Alert(f"check:{asset}:{ev.check_name}:{part}", summary, "critical" if kill else "error",
                 details=details), failing


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def process_check_events(instance: dg.DagsterInstance, sender: Any, cursor: str | None) -> tuple[str, int]:
    """Feed the check evaluations of the runs that finished after ``cursor`` (the last processed run's update
    time) to ``sender``, run by run in finishing order; (new cursor, alert transitions). Works on every instance
    storage (the default SQLite event log is sharded by run, so the cursor is a run time, not an event id)."""
    import datetime as dt

    t = float(cursor) if cursor else 0.0
    recs = instance.get_run_records(
        filters=dg.RunsFilter(statuses=FINISHED, updated_after=dt.datetime.fromtimestamp(t, tz=dt.UTC)),
        order_by="update_timestamp", ascending=True, limit=BATCH)
    n = 0
    for rr in recs:
        run_id = rr.dagster_run.run_id
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            if entry.dagster_event is None:
                continue
            got = check_alert(entry.dagster_event.asset_check_evaluation_data, run_id)
            if got is not None and sender.update(*got, flush=False) != "unchanged":  # one flush at the end
                n += 1
        t = max(t, rr.update_timestamp.timestamp())
    return repr(t), n


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Pages on-call when an ERROR check fails (kill switches, QA, gates); resolves when it passes. "
                       "Transitions are recorded first, then delivered in one flush (one try per target and "
                       "evaluation: a dead receiver costs one timeout; undelivered alerts wait in the outbox).")
def oncall_check_alerts(context: dg.SensorEvaluationContext, market_store: MarketStoreResource,
                        alerting: AlertingResource, artifacts: ArtifactsResource) -> dg.SkipReason:
    sender = alerting.sender(market_store.store().engine, artifacts.data_dir or None, echo=context.log.info,
                             attempts=1)  # one try per row here: the sensor is re-evaluated every 30 s anyway
    cursor, n = process_check_events(context.instance, sender, context.cursor)
    pending = sender.flush()["pending"]
    context.update_cursor(cursor)
    return dg.SkipReason(f"{n} alert transition(s); {pending} delivery(ies) pending retry")


def _run_alert(run: Any, failing: bool, message: str = "") -> Any:
    from resources.alerting import Alert

    part = run.tags.get("dagster/partition") or (
        f"{run.tags['dagster/asset_partition_range_start']}..{run.tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in run.tags else "-")
    summary = (f"run of {run.job_name} [{part}] {'failed' if failing else 'succeeded again'}"
               + (f": {message.strip().splitlines()[0][:300]}" if failing and message.strip() else ""))
    return Alert(f"run:{run.job_name}:{part}", summary, "error", details={"job": run.job_name, "partition": part,
                                                                         "run_id": run.run_id})


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, monitor_all_code_locations=False,
                       description="Pages on-call when a run fails.")
def oncall_run_failures(context: dg.RunFailureSensorContext, market_store: MarketStoreResource,
                        alerting: AlertingResource, artifacts: ArtifactsResource) -> None:
    sender = alerting.sender(market_store.store().engine, artifacts.data_dir or None, echo=context.log.info)
    sender.update(_run_alert(context.dagster_run, True, failure_message(context.instance, context.dagster_run.run_id,
                                                                        context.failure_event.message or "")), True)


def failure_message(instance: dg.DagsterInstance, run_id: str, default: str) -> str:
    """The first failed step's own error (what went wrong), else the run failure's message."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        err = entry.dagster_event.step_failure_data.error if entry.dagster_event else None
        if err is not None and err.message.strip():
            lines = [ln.strip() for ln in err.message.splitlines() if ln.strip()]
            return next((ln for ln in lines if not ln.startswith("dagster.")), lines[0])
    return default


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="Resolves a run-failure alert when the job succeeds again for the same partition.")
def oncall_run_recoveries(context: dg.RunStatusSensorContext, market_store: MarketStoreResource,
                          alerting: AlertingResource, artifacts: ArtifactsResource) -> None:
    sender = alerting.sender(market_store.store().engine, artifacts.data_dir or None, echo=context.log.info)
    sender.update(_run_alert(context.dagster_run, False), False)


defs = dg.Definitions(sensors=[oncall_check_alerts, oncall_run_failures, oncall_run_recoveries])

__all__ = ["check_alert", "defs", "process_check_events"]
