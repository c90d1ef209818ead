"""The Dagster code location loads, and shows every stage of the flow partitioned by bill cycle."""

from datetime import datetime

import dagster as dg

from assets.definitions import defs
from assets.reports import cycle_reports_catalogue

STAGES = {
    "usage_files": "mediation",
    "recycled_suspense": "mediation",
    "mediated_usage": "mediation",
    "rated_usage": "rating",
    "account_charges": "billing",
    "invoices": "billing",
    "agent_commissions": "billing",
    "invoice_documents": "documents",
    "cycle_approval": "delivery",
    "bounces": "delivery",
    "deliveries": "delivery",
    "print_batch": "delivery",
    "payment_reminders": "delivery",
    "credit_note_deliveries": "delivery",
    "warehouse": "warehouse",
    "cycle_dashboard": "reports",
} | {f"reports/{name}": "reports" for name in cycle_reports_catalogue()}


def test_definitions_load_with_every_stage_grouped_and_partitioned():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string(): key for key in graph.get_all_asset_keys()}
    assert set(keys) == set(STAGES)
    for name, group in STAGES.items():
        node = graph.get(keys[name])
        assert node.group_name == group
        assert node.partitions_def is not None
        assert node.description
    assert defs.resolve_job_def("bill_cycle") is not None
    assert defs.resolve_job_def("recycle_suspense") is not None
    assert defs.resolve_job_def("approve_cycle") is not None
    assert defs.resolve_job_def("cycle_reports") is not None
    assert defs.resolve_job_def("deliver_credit_notes") is not None
    assert defs.resolve_sensor_def("reports_after_publish") is not None
    assert defs.resolve_schedule_def("monthly_bill_run") is not None


def test_the_schedule_runs_the_cycle_that_just_ended():
    schedule = defs.resolve_schedule_def("monthly_bill_run")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 2, 3, 0))
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-10"]


def test_the_schedule_never_approves_delivery():
    """The unattended run stops at the approval gate: its run request names no approver."""
    schedule = defs.resolve_schedule_def("monthly_bill_run")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 2, 3, 0))
    [request] = list(schedule.evaluate_tick(context).run_requests or [])
    assert "cycle_approval" not in (request.run_config or {}).get("ops", {})
    job = defs.resolve_job_def("bill_cycle")
    assert job.run_config_schema.config_type.fields["ops"].config_type.fields["cycle_approval"].is_required is False
