"""The approval gate: nothing of a cycle is delivered before a person approves it after its blocking checks; the
reviewer gets a sample of invoices first; an approval is revoked only while nothing was delivered."""

import mailbox

import polars as pl
import pytest
from conftest import SAMPLE_CYCLE
from delivery_fixtures import asset_metadata, copy_home, deliver

from pipeline.approval import ApprovalError, approve_cycle, blocking_check_failures, revoke_approval
from pipeline.engine import scalar
from pipeline.home import Home
from pipeline.invoicing import INVOICES
from pipeline.lake import partition_dir
from pipeline.state import open_state


@pytest.fixture
def waiting(waiting_cycle):
    return waiting_cycle


def test_an_unapproved_cycle_delivers_nothing_and_lists_invoices_to_review(waiting):
    home, result = waiting
    meta = asset_metadata(result, "deliveries")
    assert meta["pending_approval"] == 49  # every invoice of the sample cycle waits
    assert meta["approved_by"] == ""
    assert not (home.outbox / "new").exists() or not any((home.outbox / "new").iterdir())
    with open_state(home.state_db) as state:
        assert scalar(state, "select count(*) from delivery_ledger") == 0
        assert scalar(state, "select count(*) from cycle_approvals") == 0
    sample = pl.read_csv(home.documents / SAMPLE_CYCLE / "review_sample.csv")
    reasons = sample["reason"].to_list()
    # first the highest amount; the sample month has Spanish, paper and credit accounts; no previous cycle
    # (so no change to compare) and no e-invoice flag in its accounts
    assert reasons[0] == "highest_amount"
    assert {"spanish", "paper"} <= set(reasons)
    assert "largest_change" not in reasons
    with open_state(home.state_db) as state:
        top = state.execute(
            "select invoice_number from invoices where cycle = ? order by total_amount desc, invoice_number limit 1",
            [SAMPLE_CYCLE],
        ).fetchall()[0][0]
    assert sample["invoice_number"][0] == top
    assert sample["invoice_number"].n_unique() == sample.height


def test_approval_delivers_once_and_then_cannot_be_revoked(waiting, tmp_path):
    home = copy_home(waiting[0], tmp_path / "home")
    with open_state(home.state_db) as state, pytest.raises(ApprovalError, match="no approval to revoke"):
        revoke_approval(state, SAMPLE_CYCLE, "ops")
    result = deliver(home, approved_by="j.rivera")
    assert result.success
    meta = asset_metadata(result, "deliveries")
    assert meta["emailed"] == 36 and meta["printed"] == 13  # the sample's e-mail and paper accounts
    assert asset_metadata(result, "cycle_approval")["approved_by"] == "j.rivera"
    assert len(mailbox.Maildir(home.outbox, create=False)) == 36
    with open_state(home.state_db) as state:
        with pytest.raises(ApprovalError, match="can no longer be revoked"):
            revoke_approval(state, SAMPLE_CYCLE, "ops")
        # approving again keeps the first approval
        approval, new = approve_cycle(state, home.lake, SAMPLE_CYCLE, "someone.else")
        assert (approval.approved_by, new) == ("j.rivera", False)
    again = deliver(home, approved_by="someone.else")
    assert asset_metadata(again, "deliveries")["emailed"] == 0
    assert len(mailbox.Maildir(home.outbox, create=False)) == 36


def test_an_approval_revoked_before_delivery_stops_delivery_again(waiting, tmp_path):
    home = copy_home(waiting[0], tmp_path / "home")
    with open_state(home.state_db) as state:
        approve_cycle(state, home.lake, SAMPLE_CYCLE, "a.ng", "looked at the sample")
        revoked = revoke_approval(state, SAMPLE_CYCLE, "b.lee", "wrong tax table")
        assert revoked.approved_by == "a.ng"
        assert scalar(state, "select count(*) from cycle_approvals where revoked_by = 'b.lee'") == 1
        # a new approval gets the next number
        approval, new = approve_cycle(state, home.lake, SAMPLE_CYCLE, "a.ng")
        assert new and approval.approval_no == 2


def test_no_approval_while_a_blocking_check_fails_or_before_the_cycle_is_final(waiting, tmp_path):
    home = copy_home(waiting[0], tmp_path / "home")
    invoices = partition_dir(home.lake, INVOICES, cycle=SAMPLE_CYCLE) / "invoices.parquet"
    frame = pl.read_parquet(invoices)
    frame.slice(1).write_parquet(invoices)  # one billable account loses its invoice
    with open_state(home.state_db) as state:
        failures = blocking_check_failures(state, home.lake, SAMPLE_CYCLE)
        assert any(f.startswith("one_invoice_per_billable_account: 1 accounts") for f in failures)
        with pytest.raises(ApprovalError, match="cannot be approved"):
            approve_cycle(state, home.lake, SAMPLE_CYCLE, "a.ng")
        with pytest.raises(ApprovalError, match="names the person"):
            approve_cycle(state, home.lake, SAMPLE_CYCLE, "  ")
    fresh = Home(tmp_path / "fresh").ensure()
    with open_state(fresh.state_db) as state, pytest.raises(ApprovalError, match="not finalised"):
        approve_cycle(state, fresh.lake, SAMPLE_CYCLE, "a.ng")
    # through Dagster the refusal fails the approval step and nothing is delivered
    result = deliver(home, approved_by="a.ng")
    assert not result.success
    with open_state(home.state_db) as state:
        assert scalar(state, "select count(*) from delivery_ledger") == 0


def test_the_command_line_approves_and_delivers_then_refuses_to_revoke(waiting, tmp_path):
    from test_cli import cdrbill

    home = copy_home(waiting[0], tmp_path / "home")
    pending = cdrbill(home.root, "summary", "--cycle", SAMPLE_CYCLE)
    assert "approval: PENDING" in pending.stdout and "delivery: 0 e-mailed, 0 to print" in pending.stdout
    nothing = cdrbill(home.root, "approve", "--cycle", SAMPLE_CYCLE, "--by", "ops", "--revoke")
    assert nothing.returncode == 2 and "no approval to revoke" in nothing.stderr
    done = cdrbill(home.root, "approve", "--cycle", SAMPLE_CYCLE, "--by", "ops.lead", "--note", "sample ok")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"cycle {SAMPLE_CYCLE} approved for delivery by ops.lead" in done.stdout
    assert "delivery: 36 e-mailed, 13 to print" in done.stdout and "approval: approved by ops.lead" in done.stdout
    late = cdrbill(home.root, "approve", "--cycle", SAMPLE_CYCLE, "--by", "ops", "--revoke")
    assert late.returncode == 2 and "can no longer be revoked" in late.stderr


def test_a_copied_home_shares_nothing_with_the_original(waiting, tmp_path):
    home = copy_home(waiting[0], tmp_path / "home")
    links = [p for p in home.lake.rglob("*") if p.is_symlink()]
    assert links and all(str(p.resolve()).startswith(str(home.root)) for p in links)
