"""Print batches: one merged PDF + manifest of the cycle's paper invoices, presorted by ZIP, read back page by
page against the manifest; bad postal addresses held in rejects; duplex padding; byte-identical re-runs; nothing
printed twice."""

import hashlib
import shutil

import polars as pl
import pytest
from conftest import SAMPLE_CYCLE
from delivery_fixtures import asset_metadata, copy_home, deliver
from pypdf import PdfReader

from pipeline.print_batches import address_problems, build_print_batch
from pipeline.reference import load_reference
from pipeline.state import open_state


def _break_addresses(home) -> dict[str, str]:
    """Give two paper accounts a bad postal address; returns account → expected reason."""
    path = home.reference / "accounts.csv"
    accounts = pl.read_csv(path, infer_schema=False)
    paper = accounts.filter(pl.col("delivery_preference") == "paper")["account_id"].to_list()
    broken = {paper[0]: "BAD_ZIP", paper[1]: "BAD_ZIP"}  # (the reference loader refuses an empty street)
    bad_zip = {paper[0]: "7520", paper[1]: "60606-12"}
    accounts = accounts.with_columns(
        billing_zip=pl.col("account_id").replace_strict(bad_zip, default=pl.col("billing_zip")),
    )
    accounts.write_csv(path)
    return broken


def test_address_rules():
    accounts = pl.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "A4", "A5", "A6"],
            "billing_address_line1": ["1 Main St", "1 Main St", " ", "1 Main St", "1 Main St", "1 Main St"],
            "billing_city": ["Austin", "Austin", "Austin", "", "Austin", "Austin"],
            "billing_state": ["TX", "TX", "TX", "TX", "Tx", "TX"],
            "billing_zip": ["75201", "75201-1234", "75201", "75201", "75201", "7520A"],
        }
    )
    found = dict(address_problems(accounts).iter_rows())
    assert found == {"A3": "MISSING_STREET", "A4": "MISSING_CITY", "A5": "BAD_STATE", "A6": "BAD_ZIP"}


def test_the_print_batch_matches_its_manifest_page_by_page(waiting_cycle, tmp_path):
    home = copy_home(waiting_cycle[0], tmp_path / "home")
    broken = _break_addresses(home)
    (home.reference / "settings.toml").write_text("print_duplex = true\n", encoding="utf-8")
    result = deliver(home)
    assert result.success
    meta = asset_metadata(result, "print_batch")
    # 13 paper invoices in the sample; two held for their address
    assert (meta["printed"], meta["rejected_addresses"], meta["batch"]) == (11, 2, f"{SAMPLE_CYCLE}-01")

    folder = home.print_dir / SAMPLE_CYCLE / "batches"
    manifest = pl.read_csv(folder / f"{SAMPLE_CYCLE}-01-manifest.csv", infer_schema=False)
    rejects = pl.read_csv(folder / "rejects.csv", infer_schema=False)
    assert {r["account"][-4:]: r["reason"] for r in rejects.iter_rows(named=True)} == {
        a[-4:]: reason for a, reason in broken.items()
    }
    assert manifest["zip"].to_list() == sorted(manifest["zip"].to_list())  # presorted by ZIP
    assert all(a.startswith("****") and len(a) == 8 for a in manifest["account"].to_list())  # masked
    assert not set(manifest["account"]) & {r["account"] for r in rejects.iter_rows(named=True)}

    reader = PdfReader(folder / f"{SAMPLE_CYCLE}-01.pdf")
    expected_pages = 0
    for row in manifest.iter_rows(named=True):
        own = home.documents / SAMPLE_CYCLE / f"{row['document_id']}.pdf"
        assert hashlib.sha256(own.read_bytes()).hexdigest() == row["sha256"]
        own_pages = len(PdfReader(own).pages)
        pages = int(row["pages"])
        assert pages == own_pages + own_pages % 2  # duplex: padded to an even count
        first = int(row["first_page"])
        assert first == expected_pages + 1
        text = reader.pages[first - 1].extract_text()
        assert row["document_id"] in text and row["name"].split()[0] in text
        if pages > own_pages:
            assert reader.pages[first - 1 + own_pages].extract_text().strip() == ""
        expected_pages += pages
    assert len(reader.pages) == expected_pages == meta["pages"]

    # nothing printed twice: a second run makes no new batch and leaves the first one as it was
    before = (folder / f"{SAMPLE_CYCLE}-01.pdf").read_bytes()
    again = deliver(home)
    assert asset_metadata(again, "print_batch")["printed"] == 0
    assert (folder / f"{SAMPLE_CYCLE}-01.pdf").read_bytes() == before
    assert sorted(p.name for p in folder.glob("*.pdf")) == [f"{SAMPLE_CYCLE}-01.pdf"]

    # the addresses fixed: the held invoices go in the next batch, once
    shutil.copy(waiting_cycle[0].reference / "accounts.csv", home.reference / "accounts.csv")
    fixed = asset_metadata(deliver(home), "print_batch")
    assert (fixed["printed"], fixed["rejected_addresses"], fixed["batch"]) == (2, 0, f"{SAMPLE_CYCLE}-02")
    with open_state(home.state_db) as state:
        assert state.execute(
            "select count(*), count(distinct document_id) from print_batch_items"
        ).fetchall() == [(13, 13)]


def test_a_batch_made_again_is_byte_identical(waiting_cycle, tmp_path):
    home = copy_home(waiting_cycle[0], tmp_path / "home")
    assert deliver(home).success
    reference = load_reference(home.reference)
    with open_state(home.state_db) as state:
        state.execute("delete from print_batch_items")  # as after a crash before the ledger write
        first = build_print_batch(
            state,
            SAMPLE_CYCLE,
            home.documents / SAMPLE_CYCLE,
            tmp_path / "a",
            reference.accounts,
            duplex=False,
        )
        state.execute("delete from print_batch_items")
        second = build_print_batch(
            state,
            SAMPLE_CYCLE,
            home.documents / SAMPLE_CYCLE,
            tmp_path / "b",
            reference.accounts,
            duplex=False,
        )
    name = f"{SAMPLE_CYCLE}-01"
    assert first.batch_id == second.batch_id == name
    for suffix in (".pdf", "-manifest.csv"):
        assert (tmp_path / "a" / f"{name}{suffix}").read_bytes() == (
            tmp_path / "b" / f"{name}{suffix}"
        ).read_bytes()
    assert first.manifest.height == 13
    assert b"/CreationDate" not in (tmp_path / "a" / f"{name}.pdf").read_bytes()


@pytest.mark.parametrize("zip_code", ["", "ABCDE"])
def test_no_zip_is_never_printed(zip_code):
    accounts = pl.DataFrame(
        {
            "account_id": ["A1"],
            "billing_address_line1": ["1 Main St"],
            "billing_city": ["Austin"],
            "billing_state": ["TX"],
            "billing_zip": [zip_code],
        }
    )
    assert address_problems(accounts)["reason"].to_list() == ["MISSING_ZIP" if not zip_code else "BAD_ZIP"]
