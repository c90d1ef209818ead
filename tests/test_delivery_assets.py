"""The bounces and deliveries assets through Dagster itself, on a copy of the sample cycle: a hard bounce of an
October invoice switches its account to paper, then the cycle is delivered again over a real SMTP server with a
password that never shows in the run's events or metadata."""

from __future__ import annotations

import mailbox
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import SAMPLE_CYCLE
from mailserver import PASSWORD, USER, MailServer, start

from assets.bounces import bounces
from assets.documents import deliveries
from assets.resources import CdrbillHome
from pipeline.home import Home

DSN = (Path(__file__).parent / "data" / "dsn" / "01-hard-user-unknown.eml").read_text()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MailServer]:
    yield from start(tmp_path, "starttls", auth=True)


def _metadata(result: dg.ExecuteInProcessResult, asset: dg.AssetsDefinition) -> dict[str, object]:
    [materialization] = result.asset_materializations_for_node(asset.op.name)
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def test_bounce_then_deliver_over_smtp_through_dagster(
    tmp_path: Path, sample_cycle, server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample_home, _ = sample_cycle
    home = Home(tmp_path / "home")
    shutil.copytree(sample_home.root, home.root, ignore=shutil.ignore_patterns("dagster", "locks"))
    resources = {"cdrbill": CdrbillHome(root=str(home.root))}
    with duckdb.connect(str(home.state_db)) as con:
        emailed = con.execute(
            "select invoice_number, account_id, message_id, destination from delivery_ledger "
            "where cycle = ? and channel = 'email' order by 1",
            [SAMPLE_CYCLE],
        ).fetchall()
        printed = con.execute(
            "select count(*) from delivery_ledger where cycle = ? and channel = 'print'", [SAMPLE_CYCLE]
        ).fetchall()[0][0]
    invoice, account, message_id, address = emailed[0]
    # the carrier's MTA returns the first e-mailed invoice: user unknown
    report = DSN.replace("<INV-00000001.2026-10@cdrbill.invalid>", message_id).replace("ana@example.com", address)
    mailbox.Maildir(home.root / "bounces", create=True).add(report.encode())

    first = dg.materialize([bounces], partition_key=SAMPLE_CYCLE, resources=resources)
    bounce_meta = _metadata(first, bounces)
    assert (bounce_meta["hard"], bounce_meta["switched_to_paper"], bounce_meta["unmatched"]) == (1, 1, 0)
    notice = home.print_dir / SAMPLE_CYCLE / "notices" / f"NOTICE-{account}.pdf"
    assert notice.read_bytes().startswith(b"%PDF")

    # deliver the cycle again, now over SMTP: the switched account on paper, every other e-mail sent
    with duckdb.connect(str(home.state_db)) as con:
        con.execute("delete from delivery_ledger where cycle = ?", [SAMPLE_CYCLE])
    for key, value in server.env(CDRBILL_SMTP_USER=USER, CDRBILL_SMTP_PASSWORD=PASSWORD).items():
        monkeypatch.setenv(key, value)
    second = dg.materialize([deliveries], partition_key=SAMPLE_CYCLE, resources=resources)
    meta = _metadata(second, deliveries)
    assert meta["transport"] == "smtp"
    # sample: 36 e-mailed + 13 printed; one e-mail account switched → 35 + 14
    assert (meta["emailed"], meta["printed"], meta["switched_to_paper"]) == (len(emailed) - 1, printed + 1, 1)
    assert (meta["bounced_hard"], meta["bounced_soft"], meta["failed_retryable"]) == (1, 0, 0)
    assert len(server.received) == len(emailed) - 1
    assert invoice not in {r.message()["Message-ID"].split(".")[0].lstrip("<") for r in server.received}
    assert (home.print_dir / SAMPLE_CYCLE / f"{invoice}.pdf").is_file()

    third = dg.materialize([deliveries], partition_key=SAMPLE_CYCLE, resources=resources)
    assert _metadata(third, deliveries)["already_delivered"] == len(emailed) + printed
    assert len(server.received) == len(emailed) - 1  # nothing sent twice

    shown = " ".join(str(event) for result in (first, second, third) for event in result.all_events)
    assert "emailed" in shown and PASSWORD not in shown
