"""The sample generator makes the same month for the same arguments, and any month it makes goes through the
pipeline with every record accounted for and every cent reconciled."""

import filecmp
import hashlib
from pathlib import Path

import polars as pl

from data_samples.generate import RESERVED_LINES, SERVICE_EXCHANGES, anomaly_hosts, generate_month
from pipeline.accounting import record_accounting
from pipeline.billing import CHARGES, compute_charges
from pipeline.cycles import BillCycle
from pipeline.engine import session
from pipeline.home import Home
from pipeline.intake import register_landed_files
from pipeline.invoicing import export_invoices, finalize_cycle, register_inputs
from pipeline.lake import partition_dir
from pipeline.mediation import mediate_cycle
from pipeline.rating import rate_cycle
from pipeline.reconciliation import cycle_reconciliation, invoice_total_mismatches
from pipeline.reference import load_reference
from pipeline.settings import Settings
from pipeline.state import open_state


def test_same_arguments_same_bytes(tmp_path: Path):
    generate_month(tmp_path / "a", accounts=30, calls_per_account=5, seed=11)
    generate_month(tmp_path / "b", accounts=30, calls_per_account=5, seed=11)
    comparison = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    files = [p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()]
    # 7 reference CSVs + 11 bill-run + 9 rating tables + 1 document preferences + 3 source TOMLs + 5 landing files
    assert len(files) == 36
    _, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "a", tmp_path / "b", [str(f) for f in files], shallow=False
    )
    assert (mismatch, errors, comparison.left_only, comparison.right_only) == ([], [], [], [])


def _digest(folder: Path) -> str:
    """SHA-256 over every file of a generated month: its path, then its bytes, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_the_streaming_generator_writes_the_months_of_the_whole_month_generator(tmp_path: Path):
    """The generator keeps its columns compact and writes the landing files a few lines at a time; the
    months are byte for byte those of the generator that held every line in memory (main at 4182684): the
    digests below were taken from it, for the bench's 100k month (2,000 accounts × 50 calls, seed 2026) and
    a small one. How many lines are written at a time changes nothing."""
    generate_month(tmp_path / "100k", accounts=2000, calls_per_account=50, seed=2026)
    assert _digest(tmp_path / "100k") == "eb3b869d6f014da565c6b98b8422bdeced35b8c0d51d099b0e90eaa9c8cfec3f"
    for write_lines in (1, 7, 1 << 20):
        generate_month(tmp_path / f"w{write_lines}", accounts=300, calls_per_account=30, seed=11,
                       write_lines=write_lines)  # fmt: skip
        assert _digest(tmp_path / f"w{write_lines}") == (
            "04f8d7bbacbc0c252a07940ce7d3838406091348d5cc242670149cf5f343a049"
        )


def test_service_numbers_take_the_next_exchange_once_the_555_lines_run_out(tmp_path: Path):
    """80,000 accounts need ~113k service numbers, more than the 555 exchanges of the 11 NPAs hold (9,890 free
    lines each): an NPA gives out all its 555 lines, then the lines of 556 from the first; every number stays a
    valid NANP E.164 number, unique, in an NPA that npa_nxx gives a jurisdiction (the whole NPA, any NXX)."""
    generate_month(tmp_path, accounts=80_000, calls_per_account=1, seed=2026)
    numbers = pl.read_csv(tmp_path / "reference" / "service_numbers.csv", infer_schema=False)["service_number"]
    assert numbers.str.contains(r"^\+1[2-9][0-9]{2}[2-9][0-9]{6}$").all()
    assert numbers.n_unique() == len(numbers) > 110_000
    npa_nxx = pl.read_csv(tmp_path / "reference" / "npa_nxx.csv", infer_schema=False)
    whole_npas = set(npa_nxx.filter(pl.col("country") == "US", pl.col("nxx").is_null())["npa"])
    parts = pl.DataFrame({"npa": numbers.str.slice(2, 3), "nxx": numbers.str.slice(5, 3),
                          "line": numbers.str.slice(8, 4).cast(pl.Int32)})  # fmt: skip
    assert set(parts["npa"]) <= whole_npas
    assert set(parts["nxx"]) == {"555", "556"} == set(SERVICE_EXCHANGES[:2])
    free_lines = [line for line in range(101, 9999) if line not in RESERVED_LINES]
    overflowed = parts.filter(pl.col("nxx") == "556")["npa"].unique().sort().to_list()
    assert len(overflowed) >= 8  # the NPAs of the 2-NPA states at least
    for npa in overflowed:
        in_555 = parts.filter(npa=npa, nxx="555")["line"]
        assert in_555.filter(~in_555.is_in(RESERVED_LINES)).sort().to_list() == free_lines  # golden ones aside
        in_556 = parts.filter(npa=npa, nxx="556")["line"].sort().to_list()
        assert in_556 == free_lines[: len(in_556)]


def test_a_generated_month_is_fully_accounted_and_reconciled(tmp_path: Path):
    home = Home(tmp_path / "home").ensure()
    generate_month(home.root, accounts=150, calls_per_account=12, seed=7)
    reference = load_reference(home.reference)
    settings = Settings()
    cycle = BillCycle.parse("2026-10", settings.billing_timezone)
    with open_state(home.state_db) as state:
        report = register_landed_files(home, state, reference.sources, cycle=cycle.key,
                                       billing_timezone=settings.billing_timezone)  # fmt: skip
    assert len(report.loaded) == 4 and len(report.duplicate_files) == 1
    with session(reference) as con:
        mediate_cycle(con, home.lake, cycle.key)
        rate_cycle(con, home.lake, cycle.key)
        compute_charges(con, home.lake, cycle)
        accounting = record_accounting(con, home.lake, cycle.key)
    assert accounting["balanced"].all()
    assert accounting["records_in"].sum() == report.records
    with open_state(home.state_db) as state:
        register_inputs(state, reference.tables())
        charges = partition_dir(home.lake, CHARGES, cycle=cycle.key) / "charge_lines.parquet"
        result = finalize_cycle(state, charges, cycle, settings)
        export_invoices(state, home.lake, cycle.key)
    assert (
        result.invoices == pl.read_parquet(charges)["account_id"].n_unique() == 149
    )  # the last account left in September
    with session() as con:
        assert invoice_total_mismatches(con, home.lake, cycle.key).height == 0
        proof = cycle_reconciliation(con, home.lake, cycle.key)
    assert proof["invoices_equal_charges"] and proof["usage_within_rounding"]


def test_bad_lines_are_hosted_by_accounts_active_the_whole_cycle_past_ten_thousand_accounts():
    # from ACC-10000 on an account number has five digits: ACC-12345 is not ACC-2345 (a special one here)
    numbers = [
        ["+13125550100", "ACC-2345", "IL", "", "", "switch-chi", "a"],
        ["+13125550101", "ACC-12345", "IL", "", "", "switch-chi", "b"],
        ["+13125550102", "ACC-20000", "IL", "", "", "switch-chi", "c"],
        ["+12125550103", "ACC-10007", "NY", "", "", "ilec-duf", "d"],
        ["+12125550104", "ACC-0007", "NY", "", "", "ilec-duf", "e"],
    ]
    special = {2345, 20000, 7}
    assert [row[1] for row in anomaly_hosts(numbers, "switch-chi", special)] == ["ACC-12345"]
    assert [row[1] for row in anomaly_hosts(numbers, "ilec-duf", special)] == ["ACC-10007"]
