"""Crash anywhere, lose nothing: the sample cycle runs in a subprocess (``cdrbill run``) that is killed with
SIGKILL again and again — at named fail points in every stage (pipeline/faults.py) and at random moments — and
each time the next run picks up from whatever the kill left. The final outputs must equal those of an
uninterrupted run: same file ledger, rated events, invoices and numbers, documents, one e-mail per invoice."""

import contextlib
import mailbox
import os
import random
import resource
import signal
import subprocess
import sys
import time

import duckdb
import polars as pl
import pytest
from conftest import SAMPLE_CYCLE, stage_sample

from pipeline.home import Home
from pipeline.rating import rated_events

pytestmark = pytest.mark.slow

# In stage order. A count is the n-th passage *in that run*: earlier stages that a previous run completed are
# re-run by Dagster but write nothing new (files are archived, documents unchanged), so counts are relative;
# mediation and rating do write their partitions again, so their swaps count in every run (traced at stop 26).
KILL_POINTS = [
    "intake.records_written@1",  # the first file's records in the lake, its ledger row not yet written
    "intake.file_registered@1",  # the first file registered, still in the landing folder
    "lake.version_written@2",  # the next-but-one file's partition written aside, not swapped in
    "intake.records_written@1",  # that file again, its ledger row not written
    "lake.swapped@2",  # the last file swapped in, its ledger row not written
    "lake.version_written@2",  # the mediated partition written aside
    "lake.swapped@1",  # the mediated partition swapped in
    "lake.version_written@3",  # a market shard's rated part written aside
    "lake.swapped@4",  # the shards' rated parts collected and swapped in
    "invoicing.numbered@1",  # invoices numbered inside the transaction, before commit
    "invoicing.committed@1",  # committed, not yet exported to the lake
    "lake.version_written@5",  # the rerate report written aside
    "lake.swapped@6",  # a market shard's charges swapped in
    "documents.rendered@10",  # in the middle of rendering the PDFs
    "documents.rendered@20",
    "delivery.emailed@1",  # an e-mail in the outbox, its ledger row not written
    "delivery.printed@1",  # a PDF copied for print, ledger row not written
    "delivery.emailed@5",
    "delivery.emailed@10",
    "delivery.printed@3",
    "print.batch_written@1",  # the print batch's files written, its documents not yet in the ledger
    "warehouse.built@1",  # the new warehouse built aside, not published
]
APPROVE = ["--approve-as", "tests"]  # each run approves delivery once the blocking checks pass (as the demo)
RANDOM_KILLS = 6  # then killed at random moments of a whole run


def _run(home: Home, crash_at: str | None = None, kill_after: float | None = None) -> int:
    """One ``cdrbill run`` in its own process group; returns its exit status (-9 when killed)."""
    env = {k: v for k, v in os.environ.items() if k != "CDRBILL_CRASH_AT"}
    if crash_at:
        env["CDRBILL_CRASH_AT"] = crash_at
    process = subprocess.Popen(
        [sys.executable, "-m", "assets.cli", "--home", str(home.root), "run", "--cycle", SAMPLE_CYCLE]
        + APPROVE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
    with contextlib.suppress(ProcessLookupError):  # a power cut takes the render workers too
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"run after kills failed ({process.returncode}):\n{stderr.decode()[-3000:]}")
    return process.returncode


def _outputs(home: Home) -> dict[str, object]:
    """Everything a cycle produces that must not depend on how often it was interrupted."""
    lake = home.lake
    with duckdb.connect(str(home.state_db), read_only=True) as state:
        ledger = {
            table: state.sql(query).pl()
            for table, query in {
                "files": "select file_id, source_id, file_name, sha256, status, records from usage_files "
                "order by file_id",
                "invoices": "select invoice_number, sequence_no, account_id, total_amount from invoices "
                "order by 1",
                "lines": "select * from invoice_lines order by invoice_number, line_no",
                "series": "select * from invoice_series",
                "deliveries": "select invoice_number, channel, message_id from delivery_ledger order by 1, 2",
                "print_batch": "select document_id, batch_id, first_page, pages from print_batch_items order by 1",
            }.items()
        }
    rated = rated_events(lake, SAMPLE_CYCLE).collect().sort("file_id", "line_no")
    documents = {
        path.name: path.read_text() for path in (home.documents / SAMPLE_CYCLE).glob("*.html.sha256")
    }
    with duckdb.connect(str(home.warehouse_db), read_only=True) as warehouse:
        published = warehouse.sql("select count(*) from invoices").fetchall()[0][0]
    return {**ledger, "rated": rated, "documents": documents, "warehouse_invoices": published}


def _message_ids(home: Home) -> list[str]:
    box = mailbox.Maildir(home.outbox, factory=None, create=False)
    return sorted(str(message["Message-ID"]) for message in box)


def test_killed_anywhere_the_cycle_completes_with_the_same_bill(tmp_path, sample_cycle):
    baseline_home, baseline_result = sample_cycle
    assert baseline_result.success
    home = stage_sample(tmp_path / "home")

    killed = []
    for point in KILL_POINTS:
        status = _run(home, crash_at=point)
        assert status == -signal.SIGKILL, f"the run never reached fail point {point}"
        killed.append(point)
    rng = random.Random(20261126)
    for _ in range(RANDOM_KILLS):
        started = time.monotonic()
        status = _run(home, kill_after=rng.uniform(2.0, 14.0))
        killed.append(f"random@{time.monotonic() - started:.1f}s" if status else "completed before the kill")
    assert _run(home) == 0
    assert len([k for k in killed if k != "completed before the kill"]) >= 20

    got, want = _outputs(home), _outputs(baseline_home)
    for name in ("files", "invoices", "lines", "series", "deliveries", "print_batch"):
        assert got[name].equals(want[name]), name  # type: ignore[attr-defined]
    assert got["rated"].equals(want["rated"])  # type: ignore[attr-defined]
    assert got["documents"] == want["documents"]
    assert got["warehouse_invoices"] == want["warehouse_invoices"]

    invoices = got["invoices"]
    assert invoices["sequence_no"].to_list() == list(range(1, invoices.height + 1))  # type: ignore[index]
    ids = _message_ids(home)
    assert len(ids) == len(set(ids)) == len(_message_ids(baseline_home))  # no e-mail twice, none lost


def test_two_runs_of_one_cycle_started_at_once_bill_and_send_once(tmp_path):
    home = stage_sample(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if k != "CDRBILL_CRASH_AT"}
    command = [sys.executable, "-m", "assets.cli", "--home", str(home.root), "run", "--cycle", SAMPLE_CYCLE]
    command += APPROVE
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in "ab"]
    outputs = [run.communicate(timeout=600)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs  # the second waited for the first

    got = _outputs(home)
    invoices = got["invoices"]
    assert invoices.height > 0  # type: ignore[attr-defined]
    assert invoices["sequence_no"].to_list() == list(range(1, invoices.height + 1))  # type: ignore[index]
    ids = _message_ids(home)
    assert len(ids) == len(set(ids)) == got["deliveries"].filter(pl.col("channel") == "email").height  # type: ignore[attr-defined]


def _disk_full(limit_bytes: int):
    """In the child: any file write past ``limit_bytes`` fails with EFBIG, as on a full disk."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


@pytest.mark.parametrize("limit_kib", [16, 256])
def test_disk_full_fails_cleanly_and_the_next_run_completes(tmp_path, sample_cycle, limit_kib):
    baseline_home, _ = sample_cycle
    home = stage_sample(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if k != "CDRBILL_CRASH_AT"}
    command = [sys.executable, "-m", "assets.cli", "--home", str(home.root), "run", "--cycle", SAMPLE_CYCLE]
    command += APPROVE
    full = subprocess.run(
        command, env=env, capture_output=True, timeout=600, preexec_fn=_disk_full(limit_kib * 1024)
    )
    assert full.returncode != 0  # the run reports the failure, it does not pretend
    if home.state_db.exists():  # whatever was written is still a readable database
        duckdb.connect(str(home.state_db), read_only=True).close()

    assert _run(home) == 0
    got, want = _outputs(home), _outputs(baseline_home)
    for name in ("files", "invoices", "lines", "series", "deliveries", "print_batch"):
        assert got[name].equals(want[name]), name  # type: ignore[attr-defined]
    ids = _message_ids(home)
    assert len(ids) == len(set(ids)) == len(_message_ids(baseline_home))


# E-mail over SMTP: the delivery step alone, in a subprocess killed at its fail points, sending to a real SMTP
# server on loopback that counts what it accepts (pipeline steps before delivery are covered above).
SMTP_KILL_POINTS = [
    "delivery.intent@1",  # intent committed, nothing sent
    "delivery.emailed@1",  # the server said 250, the outcome row not written
    "delivery.emailed@1",  # the next one
    "delivery.intent@2",
    "delivery.emailed@2",
]
SMTP_INVOICES = [f"INV-0000030{n}" for n in range(1, 6)]


@pytest.fixture(scope="module")
def smtp_pdfs(tmp_path_factory):
    from test_documents import TEMPLATES, make_doc

    from pipeline.rendering import render_invoice_pdfs

    folder = tmp_path_factory.mktemp("smtp-crash-pdfs")
    render_invoice_pdfs([make_doc(n) for n in SMTP_INVOICES], folder, TEMPLATES, workers=1)
    return folder


def _deliver(server_env: dict[str, str], tmp_path, pdfs, crash_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "CDRBILL_CRASH_AT"} | server_env
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), env.get("PYTHONPATH", "")])
    if crash_at:
        env["CDRBILL_CRASH_AT"] = crash_at
    driver = os.path.join(os.path.dirname(__file__), "smtp_crash_driver.py")
    args = [str(tmp_path / "state.duckdb"), str(pdfs), str(tmp_path), *SMTP_INVOICES]
    done = subprocess.run([sys.executable, driver, *args], env=env, capture_output=True, timeout=900)
    if done.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"delivery failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
    return done.returncode


@pytest.mark.parametrize("archive", [True, False], ids=["archive-copy", "no-proof"])
def test_killed_while_sending_over_smtp_no_invoice_gets_two_message_ids(tmp_path, smtp_pdfs, archive):
    from mailserver import ARCHIVE, start

    runner = start(tmp_path)
    server = next(runner)
    try:
        extra = {}
        if archive:
            server.handler.archive_maildir = tmp_path / "archive"
            extra = {"CDRBILL_SMTP_ARCHIVE": ARCHIVE, "CDRBILL_SMTP_ARCHIVE_MAILDIR": str(tmp_path / "archive")}
        env = server.env(**extra)
        for point in SMTP_KILL_POINTS:
            assert _deliver(env, tmp_path, smtp_pdfs, point) == -signal.SIGKILL, point
        assert _deliver(env, tmp_path, smtp_pdfs, None) == 0
        assert _deliver(env, tmp_path, smtp_pdfs, None) == 0  # and again: nothing more is sent
    finally:
        runner.close()

    ids = [str(r.message()["Message-ID"]) for r in server.received]
    want = [f"<{n}.2026-10@cdrbill.invalid>" for n in SMTP_INVOICES]
    assert sorted(set(ids)) == want  # one Message-ID per invoice, none lost, none invented
    with duckdb.connect(str(tmp_path / "state.duckdb"), read_only=True) as state:
        rows = state.execute("select message_id, status from delivery_ledger order by 1").fetchall()
    assert rows == [(mid, "sent") for mid in want]
    if archive:  # every accepted message was proven by its archive copy: none sent twice
        assert len(ids) == len(SMTP_INVOICES)
    else:  # each kill after the 250 resends that one invoice, with the same Message-ID
        assert len(ids) == len(SMTP_INVOICES) + sum(p.startswith("delivery.emailed") for p in SMTP_KILL_POINTS)
