"""The daily payment reminder schedule, evaluated by Dagster itself (``build_schedule_context``) on a copy of the
delivered sample cycle, and its run request executed as the job ``daily_payment_reminders``: the reminders due
that day go out once — the same day again sends nothing, a later level is sent when it is reached."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from conftest import SAMPLE_CYCLE
from delivery_fixtures import asset_metadata, copy_home, deliver

from assets.definitions import defs
from assets.resources import CdrbillHome
from pipeline.state import open_state

CHICAGO = ZoneInfo("America/Chicago")  # the bill cycles' time zone


def _tick(home, when: datetime) -> dg.RunRequest | None:
    schedule = defs.resolve_schedule_def("daily_payment_reminders")
    with dg.build_schedule_context(
        scheduled_execution_time=when,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
        repository_def=defs.get_repository_def(),
    ) as context:
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert len(requests) <= 1
    return requests[0] if requests else None


def _run(request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Execute the schedule's job for the request, as the daemon would (the home from CDRBILL_HOME)."""
    return defs.resolve_job_def("daily_payment_reminders").execute_in_process(
        partition_key=request.partition_key,
        run_config=request.run_config,
        instance=dg.DagsterInstance.ephemeral(),
    )


def test_daily_reminders_are_sent_once_per_day_and_level(waiting_cycle, tmp_path, monkeypatch):
    home = copy_home(waiting_cycle[0], tmp_path / "home")
    monkeypatch.setenv("CDRBILL_HOME", str(home.root))
    # billed but not delivered yet: nothing to remind
    assert _tick(home, datetime(2026, 12, 7, 7, 0, tzinfo=CHICAGO)) is None
    assert deliver(home).success  # approved and delivered; reminders decided on the issue date: none
    with open_state(home.state_db) as state:
        invoices = state.execute(
            "select invoice_number, account_id, total_amount from invoices order by 1"
        ).fetchall()
        # every invoice paid but INV-00000001 (ACC-0001, e-mail) and INV-00000003 (ACC-0003, paper)
        for n, (invoice, account, total) in enumerate(invoices):
            if invoice in ("INV-00000001", "INV-00000003"):
                continue
            state.execute(
                "insert into payments values (?, ?, '2026-11-20', ?, 'card', null, ?, '2026-11-30')",
                [f"P-{n}", account, total, SAMPLE_CYCLE],
            )
            state.execute(
                "insert into payment_allocations values (?, ?, ?, ?)",
                [f"P-{n}", invoice, total, SAMPLE_CYCLE],
            )

    # due 2026-11-22; 2026-12-06 is 14 days past due: a run, no reminder yet
    request = _tick(home, datetime(2026, 12, 6, 7, 0, tzinfo=CHICAGO))
    assert request is not None and request.partition_key == SAMPLE_CYCLE
    assert request.run_config == {"ops": {"payment_reminders": {"config": {"as_of": "2026-12-06"}}}}
    assert asset_metadata(_run(request), "payment_reminders")["reminders"] == 0

    # 2026-12-07, 15 days: the first reminder for both open invoices, one e-mailed and one printed
    request = _tick(home, datetime(2026, 12, 7, 7, 0, tzinfo=CHICAGO))
    assert request is not None and request.run_key == "reminders-2026-12-07"
    first = _run(request)
    meta = asset_metadata(first, "payment_reminders")
    assert (meta["reminders"], meta["level_reminder"], meta["emailed"], meta["to_print"]) == (2, 2, 1, 1)
    assert asset_metadata(first, "print_batch")["printed"] == 1  # the paper reminder, in the next batch

    # the same day again (a retried tick, or the run started by hand): the same run key, nothing sent twice
    again = _tick(home, datetime(2026, 12, 7, 7, 0, tzinfo=CHICAGO))
    assert again is not None and again.run_key == request.run_key
    second = _run(again)
    assert asset_metadata(second, "payment_reminders")["reminders"] == 0
    assert asset_metadata(second, "print_batch")["printed"] == 0

    # 2026-12-22, 30 days: the second notice, once
    later = asset_metadata(
        _run(_tick(home, datetime(2026, 12, 22, 7, 0, tzinfo=CHICAGO))), "payment_reminders"
    )
    assert (later["reminders"], later["level_second_notice"]) == (2, 2)
    with open_state(home.state_db) as state:
        sent = state.execute(
            "select invoice_number, level, channel, as_of::varchar from payment_reminders order by all"
        ).fetchall()
    assert sent == [
        ("INV-00000001", "reminder", "email", "2026-12-07"),
        ("INV-00000001", "second_notice", "email", "2026-12-22"),
        ("INV-00000003", "reminder", "print", "2026-12-07"),
        ("INV-00000003", "second_notice", "print", "2026-12-22"),
    ]


@pytest.mark.parametrize("state_file", [False, True])
def test_no_reminder_run_before_anything_was_delivered(tmp_path, state_file):
    from pipeline.home import Home

    home = Home(tmp_path / "home").ensure()
    if state_file:
        with open_state(home.state_db):
            pass
    assert _tick(home, datetime(2026, 12, 7, 7, 0, tzinfo=CHICAGO)) is None
