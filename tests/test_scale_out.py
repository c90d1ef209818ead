"""Scale-out (issue 8): the sample cycle billed over market shards — by state in this process, by account hash
through the multiprocess executor (real subprocesses) — gives the same rated events, charges, invoices (same
numbers), tax lines and documents as the single run of the session's ``sample_cycle``."""

from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.home import Home
from pipeline.locks import held_by, hold
from pipeline.settings import Settings, load_settings
from pipeline.shards import Shard, account_predicate, market_shards
from tests.conftest import SAMPLE_CYCLE, materialize_cycle, stage_sample

pytestmark = pytest.mark.slow

# every lake table a shard stage writes or a later stage derives from it; key columns to sort by
COMPARED = {
    "rated/rated": ("file_id", "line_no"),
    "rated/suspended": ("file_id", "line_no"),
    "rated/tier_charges": ("account_id", "tier_id"),
    "rated/data_rounding": ("account_id", "charged_number", "rate_card_id", "prefix"),
    "charges/charge_lines": ("account_id", "line_no"),
    "invoices/invoices": ("invoice_number",),
    "invoices/invoice_lines": ("invoice_number", "line_no"),
    "invoices/tax_lines": None,  # every column
    "invoices/invoice_balances": ("invoice_number",),
}
VARYING = {"finalized_at"}  # when the invoices were finalised: the time of each run


def lake_table(home: Home, name: str) -> pl.DataFrame:
    dataset, table = name.split("/")
    frame = pl.read_parquet(home.lake / dataset / f"cycle={SAMPLE_CYCLE}" / f"{table}.parquet")
    frame = frame.drop([c for c in frame.columns if c in VARYING])
    return frame.sort(list(COMPARED[name] or frame.columns), nulls_last=True)


def assert_same_bill(single: Home, sharded: Home, documents: bool = True) -> None:
    for name in COMPARED:
        expected, got = lake_table(single, name), lake_table(sharded, name)
        assert got.columns == expected.columns, name
        assert got.equals(expected), name
    invoices = lake_table(sharded, "invoices/invoices")
    # the golden sample cycle: 49 invoices, 1881.77 USD, numbered INV-00000001…49 in one step
    assert invoices.height == 49 and invoices["total_amount"].sum() == Decimal("1881.77")
    assert invoices["invoice_number"].to_list() == [f"INV-{n:08d}" for n in range(1, 50)]
    if documents:  # each PDF's content hash (its HTML and the renderer's inputs) is the same
        folder = f"documents/{SAMPLE_CYCLE}"
        hashes = {p.name: p.read_text() for p in (single.root / folder).glob("*.sha256")}
        assert len(hashes) == 49
        assert {p.name: p.read_text() for p in (sharded.root / folder).glob("*.sha256")} == hashes
    assert not any((sharded.lake / ".shards").glob("*/cycle=*")), (
        "the shards' parts are removed once collected"
    )


def with_settings(home: Home, text: str) -> Home:
    with (home.reference / "settings.toml").open("a", encoding="utf-8") as settings_file:
        settings_file.write(text + "\n")
    return home


def test_the_union_of_the_market_shards_is_the_single_run(sample_cycle, tmp_path):
    single, _ = sample_cycle
    home = with_settings(stage_sample(tmp_path / "home"), 'market_by = "state"')
    result = materialize_cycle(home)
    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())
    assert_same_bill(single, home)
    # one step per service state of the sample's accounts (CA, FL, IL, NY, TX) in each sharded stage
    shard_steps = {
        e.step_key for e in result.all_events if e.step_key and "render_market_shard[" in e.step_key
    }
    assert len(shard_steps) == 5
    rated = result.asset_materializations_for_node("rated_usage")[0].metadata
    assert rated["market_shards"].value == 5 and rated["rated"].value == 863


def test_the_multiprocess_executor_bills_the_same_invoices(sample_cycle, tmp_path):
    from assets.definitions import bill_cycle, defs
    from assets.resources import CdrbillHome

    single, _ = sample_cycle

    home = with_settings(stage_sample(tmp_path / "home"), "market_shards = 2")
    # intake and mediation in this process (not sharded); then the sharded stages, a process per step
    unsharded = {dg.AssetKey("usage_files"), dg.AssetKey("mediated_usage")}
    landed = dg.materialize(
        [a for a in defs.assets or [] if set(a.keys) & unsharded],  # type: ignore[union-attr]
        partition_key=SAMPLE_CYCLE,
        resources={"cdrbill": CdrbillHome(root=str(home.root))},
    )
    assert landed.success
    (tmp_path / "dagster").mkdir()
    run_config = {
        "resources": {"cdrbill": {"config": {"root": str(home.root)}}},
        "execution": {"config": {"multiprocess": {"max_concurrent": 2}}},
    }
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.execute_job(
            dg.reconstructable(bill_cycle),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": SAMPLE_CYCLE},
            # rating to invoices: each step a process that loads the code location (a few seconds each)
            asset_selection=[dg.AssetKey(k) for k in ("rated_usage", "account_charges", "invoices")],
        )
        assert result.success
        step_pids = {e.pid for e in result.all_events if e.is_step_start}
        orchestrator = {e.pid for e in result.all_events if e.event_type_value == "RUN_START"}
    # 2 × (fan-out, 2 shards, collect), invoices: each its own process
    assert len(step_pids) == 9 and not step_pids & orchestrator
    assert_same_bill(single, home, documents=False)
    assert not held_by(home.root / "locks" / "home.lock", f"run {result.run_id}")  # released at the run's end


def test_a_step_goes_on_while_its_own_run_holds_the_home_and_another_run_does_not(tmp_path: Path):
    lock = tmp_path / "locks" / "home.lock"
    assert not held_by(lock, "run A")
    with hold(lock, "run A"):
        assert held_by(lock, "run A")
        assert not held_by(lock, "run AB") and not held_by(lock, "run B")
    assert not held_by(lock, "run A")  # released: nobody holds it, whatever the file says


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    accounts=st.lists(st.text("ABC-0123456789", min_size=1, max_size=12), max_size=40, unique=True),
    count=st.integers(1, 7),
)
def test_every_account_is_in_exactly_one_hash_shard(accounts, count):
    shards = market_shards(Settings(market_shards=count), pl.DataFrame({"service_state": ["IL"]}))
    assert [s.key for s in shards] == [str(k) for k in range(count)]
    con = duckdb.connect()
    con.register("events", pl.DataFrame({"account_id": [*accounts, None]}, schema={"account_id": pl.String}))
    claims = [
        con.sql(f"select account_id from events where {account_predicate(shard)}")
        .pl()["account_id"]
        .to_list()
        for shard in shards
    ]
    # each account (and the event without one) is claimed by exactly one shard
    assert sorted(a for claim in claims for a in claim if a is not None) == sorted(accounts)
    assert sum(claim.count(None) for claim in claims) == 1 and None in claims[0]


def test_state_shards_and_bad_settings(tmp_path: Path):
    accounts = pl.DataFrame({"account_id": ["A", "B", "C"], "service_state": ["TX", "IL", "TX"]})
    shards = market_shards(Settings(market_by="state"), accounts)
    assert shards == [Shard("IL", "state", 2, True), Shard("TX", "state", 2, False)]
    con = duckdb.connect()
    con.register("accounts", accounts)
    con.register("events", pl.DataFrame({"account_id": ["A", "B", "C", "ZZ", None]}))
    claims = [
        set(con.sql(f"select account_id from events where {account_predicate(s)}").pl()["account_id"])
        for s in shards
    ]
    assert claims == [{"B", "ZZ", None}, {"A", "C"}]  # unknown and missing accounts go to the first shard
    (tmp_path / "settings.toml").write_text('market_by = "county"\n')
    with pytest.raises(ValueError, match="market_by='county'"):
        load_settings(tmp_path)
