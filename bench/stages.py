"""One benchmark stage in this process: ``python -m bench.stages <stage> --home H --out result.json``.

Each pipeline stage makes the same ``pipeline`` calls (and runs the same blocking checks) as its Dagster asset
in ``assets/``; the parent (``bench/run.py``) starts every stage in a fresh process so that its wall time and
peak RSS are its own. The clock starts after the imports, so interpreter start-up is not a stage's cost.
The result file holds ``wall_s``, ``records`` (what the stage consumed) and stage details."""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import DOCUMENTS, NAIVE_DOCUMENTS
from pipeline.accounting import MEDIATION_OUTCOMES, OUTCOMES, checked_record_accounting
from pipeline.billing import CHARGES, compute_charges
from pipeline.commissions import compute_commissions
from pipeline.cycles import BillCycle
from pipeline.delivery import deliver_invoices, delivery_items
from pipeline.documents import InvoiceDocument, render_invoice_html
from pipeline.engine import scalar, session
from pipeline.home import TEMPLATES_DIR, Home
from pipeline.invoicing import export_invoices, finalize_cycle, register_inputs
from pipeline.itemisation import write_itemisation_csvs
from pipeline.lake import lake_table
from pipeline.mediation import MEDIATED, mediate_cycle
from pipeline.rating import RATED, rate_cycle
from pipeline.reconciliation import cycle_reconciliation, invoice_total_mismatches
from pipeline.reference import Reference, load_usage_reference
from pipeline.reference_verdict import VERDICT_FILE, checked_reference, checked_usage_reference
from pipeline.rendering import render_invoice_pdfs
from pipeline.settings import load_settings
from pipeline.state import open_state
from pipeline.statements import invoice_document_batches
from pipeline.warehouse import publish_warehouse

StageResult = dict[str, Any]


class BenchCheckFailed(RuntimeError):
    """A blocking check of the real pipeline failed during the benchmark: the numbers would mean nothing."""


def _accounting_balanced(
    home: Home, cycle: str, outcomes: dict[str, tuple[str, str]], memory_limit: str
) -> int:
    """Files in the cycle whose records in ≠ the sum of their outcomes (the assets' blocking check, under the
    stage's own memory limit as the assets run it)."""
    table = checked_record_accounting(
        home.lake, cycle, outcomes, memory_limit=memory_limit, spill_dir=home.root / "tmp"
    )
    unbalanced = table.filter(~table["balanced"]).height
    if unbalanced:
        raise BenchCheckFailed(f"record accounting: {unbalanced} files do not balance in cycle {cycle}")
    return table.height


def _reference(home: Home) -> Reference:
    """The whole reference as the assets load it after intake (``CdrbillHome.reference``: checked unless intake
    checked this content already)."""
    return checked_reference(home.reference, home.root / VERDICT_FILE)


def intake(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Register, parse and normalise every landed file (asset ``usage_files``)."""
    from pipeline.intake import register_landed_files

    reference = checked_usage_reference(home.reference, home.root / VERDICT_FILE)
    settings = load_settings(home.reference)
    with open_state(home.state_db) as state:
        report = register_landed_files(
            home,
            state,
            reference.sources,
            cycle=cycle,
            billing_timezone=settings.billing_timezone,
            billing_window_days=settings.billing_window_days,
        )
    return {
        "records": report.records,
        "files_loaded": len(report.loaded),
        "duplicate_files": len(report.duplicate_files),
        "files_quarantined": len(report.quarantined),
    }


def mediation(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Mediate the cycle and prove its record accounting (asset ``mediated_usage`` and its check)."""
    settings = load_settings(home.reference)
    with session(
        load_usage_reference(home.reference),
        memory_limit=settings.mediation_memory_limit,
        spill_dir=home.root / "tmp",
    ) as con:
        counts = mediate_cycle(
            con,
            home.lake,
            cycle,
            duplicate_window_days=settings.duplicate_window_days,
            duplicate_tolerance_seconds=settings.duplicate_tolerance_seconds,
        )
    _accounting_balanced(home, cycle, MEDIATION_OUTCOMES, settings.mediation_memory_limit)
    return {"records": counts["records_in"], **{k: v for k, v in counts.items() if k != "records_in"}}


def rating(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Rate the mediated cycle and prove its record accounting (asset ``rated_usage`` and its check); run a
    second time on the same mediated partition it is the re-rating of the cycle."""
    settings = load_settings(home.reference)
    normalised = lake_table(home.lake, MEDIATED, "normalised", cycle=cycle)
    with session(
        _reference(home), memory_limit=settings.rating_memory_limit, spill_dir=home.root / "tmp"
    ) as con:  # the reference held by the session only, as the asset does
        records = int(scalar(con, f"select count(*) from read_parquet('{normalised.as_posix()}')"))
        counts = rate_cycle(con, home.lake, cycle)
    _accounting_balanced(home, cycle, OUTCOMES, settings.rating_memory_limit)
    return {"records": records, **counts}


def charges(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Compute the cycle's charge lines (asset ``account_charges``)."""
    reference, settings = _reference(home), load_settings(home.reference)
    rated = lake_table(home.lake, RATED, "rated", cycle=cycle)
    with session(reference, memory_limit=settings.duckdb_memory_limit) as con:
        records = int(scalar(con, f"select count(*) from read_parquet('{rated.as_posix()}')"))
        result = compute_charges(con, home.lake, BillCycle.parse(cycle, settings.billing_timezone))
    return {"records": records, **result}


def invoices(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Finalise, number and export the cycle's invoices, then run both blocking checks (asset ``invoices``)."""
    reference, settings = _reference(home), load_settings(home.reference)
    bill_cycle = BillCycle.parse(cycle, settings.billing_timezone)
    lines = lake_table(home.lake, CHARGES, "charge_lines", cycle=cycle)
    with open_state(home.state_db) as state:
        register_inputs(state, reference.tables())
        records = int(scalar(state, f"select count(*) from read_parquet('{lines.as_posix()}')"))
        result = finalize_cycle(state, lines, bill_cycle, settings)
        exported = export_invoices(state, home.lake, cycle)
    with session() as con:
        mismatches = invoice_total_mismatches(con, home.lake, cycle)
        proof = cycle_reconciliation(con, home.lake, cycle)
    if mismatches.height or not (proof["invoices_equal_charges"] and proof["usage_within_rounding"]):
        raise BenchCheckFailed(f"invoice checks failed: {mismatches.height} mismatches, {proof}")
    return {
        "records": records,
        "invoices": result.invoices,
        "invoice_lines": exported["invoice_lines"],
        "total_billed": result.total_amount,
    }


def commissions(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Agent commissions and statements of the cycle (asset ``agent_commissions``)."""
    reference, settings = _reference(home), load_settings(home.reference)
    with session(reference) as con:
        written = compute_commissions(con, home.lake, BillCycle.parse(cycle, settings.billing_timezone))
    return {"records": written["commission_lines"], **written}


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its finished children (the render workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _fork_server_cpu_s() -> float | None:
    """CPU seconds of the render pool's fork server and of every worker it has reaped (``/proc/<pid>/stat``:
    utime + stime + cutime + cstime), or None without a fork server. The workers are the fork server's
    children, not this process's: this is how their whole CPU (start-up, stylesheet, rendering, writing) is
    counted, where each document's ``render_cpu_s`` covers its own layout and writing only."""
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    stat = Path(f"/proc/{pid}/stat")
    if pid is None or not stat.is_file():
        return None
    fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
    # after the command name: state is field 3, utime … cstime fields 14-17 (1-based)
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _first_documents(home: Home, cycle: str, reference: Reference, n: int) -> list[InvoiceDocument]:
    """The models of the cycle's first ``n`` invoices (one batch of ``n``)."""
    batches = invoice_document_batches(
        home.lake, cycle, reference, home.root / "tmp", batch_invoices=max(n, 1)
    )
    try:
        return next(batches, [])
    finally:
        batches.close()


def documents(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Build every invoice's document model and render the first ``--documents`` of them with our renderer
    (asset ``invoice_documents``, limited to N PDFs so a large cycle stays measurable); then render the same
    invoices again, which must skip every one of them (unchanged content).

    CPU per invoice is all in: this process (HTML, hashing, feeding the pool) plus the pool's fork server and
    its workers, all their CPU from start-up on (``_fork_server_cpu_s``)."""
    reference, settings = _reference(home), load_settings(home.reference)
    started = time.perf_counter()
    models, chosen = 0, list[InvoiceDocument]()
    for batch in invoice_document_batches(
        home.lake, cycle, reference, home.root / "tmp", settings, memory_limit=settings.duckdb_memory_limit
    ):  # every model built a batch at a time, as the asset builds them; the first N kept
        models += len(batch)
        chosen += batch[: args.documents - len(chosen)]
    built = time.perf_counter()
    cpu = _cpu_s()
    rendered = render_invoice_pdfs(
        chosen, home.documents / cycle, TEMPLATES_DIR, workers=settings.render_workers
    )
    render_s = time.perf_counter() - built
    parent_cpu_s = _cpu_s() - cpu
    worker_render_cpu_s = sum(r.render_cpu_s for r in rendered)
    # the pool has been shut down (its workers joined and reaped by the fork server): count them whole,
    # else (no fork server: spawned workers) the documents' own render CPU
    pool_cpu_s = _fork_server_cpu_s()
    render_cpu_s = parent_cpu_s + (worker_render_cpu_s if pool_cpu_s is None else pool_cpu_s)
    worker_rss = max((r.peak_rss_mib for r in rendered), default=0.0)
    # the CSV itemisation of the accounts that ask for it, as the asset writes it: deliveries attach it
    rendered = write_itemisation_csvs(chosen, rendered, home.documents / cycle)
    again = time.perf_counter()
    render_invoice_pdfs(chosen, home.documents / cycle, TEMPLATES_DIR, workers=settings.render_workers)
    rerun_s = time.perf_counter() - again
    n = len(rendered)
    return {
        "records": n,
        "models_built": models,
        "models_s": round(built - started, 3),
        "render_s": round(render_s, 3),
        "render_cpu_s": round(render_cpu_s, 3),
        "cpu_s_per_invoice": round(render_cpu_s / n, 4) if n else None,
        "parent_cpu_s_per_invoice": round(parent_cpu_s / n, 4) if n else None,
        "pool_cpu_s_per_invoice": round(pool_cpu_s / n, 4) if n and pool_cpu_s is not None else None,
        "worker_render_cpu_s_per_invoice": round(worker_render_cpu_s / n, 4) if n else None,
        "rerun_unchanged_s": round(rerun_s, 3),
        "render_worker_peak_rss_mib": round(worker_rss, 1),
        "pages": sum(r.pages for r in rendered),
        "render_workers": settings.render_workers,
        "invoices_per_s": round(n / render_s, 2) if render_s else None,
        "load_average": list(os.getloadavg()),
    }


def documents_naive(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """The naive baseline on the first ``--naive-documents`` of the same invoices: one process, ``HTML(string).write_pdf(stylesheets=[CSS(file)])``
    per invoice: the same ``invoice.css`` parsed again for each, no FontConfiguration (so its ``@font-face``
    fonts are ignored and the system's ``sans-serif`` is subset per invoice), no sidecar, no pool."""
    import weasyprint

    docs = _first_documents(home, cycle, _reference(home), min(args.naive_documents, args.documents))
    out = home.root / "naive-documents"
    out.mkdir(parents=True, exist_ok=True)
    started, cpu = time.perf_counter(), _cpu_s()
    for doc in docs:
        html = render_invoice_html(doc, TEMPLATES_DIR)
        css = weasyprint.CSS(filename=str(TEMPLATES_DIR / "invoice.css"))
        pdf = weasyprint.HTML(string=html, base_url=str(TEMPLATES_DIR)).write_pdf(stylesheets=[css])
        (out / f"{doc.invoice_number}.pdf").write_bytes(pdf or b"")
    render_s = time.perf_counter() - started
    render_cpu_s = _cpu_s() - cpu
    return {
        "records": len(docs),
        "render_s": round(render_s, 3),
        "render_cpu_s": round(render_cpu_s, 3),
        "cpu_s_per_invoice": round(render_cpu_s / len(docs), 4) if docs else None,
        "invoices_per_s": round(len(docs) / render_s, 2) if render_s else None,
    }


def deliveries(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Deliver the rendered invoices by e-mail (Maildir) or paper (asset ``deliveries``, the same N)."""
    reference, settings = _reference(home), load_settings(home.reference)
    docs = _first_documents(home, cycle, reference, args.documents)
    items = delivery_items(docs, reference.accounts, home.documents / cycle)
    with open_state(home.state_db) as state:
        report = deliver_invoices(
            state, items, home.outbox, home.print_dir / cycle, settings.sender_email, TEMPLATES_DIR
        )
    return {"records": len(items), "emailed": report.emailed, "printed": report.printed}


def warehouse(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """Publish the analysts' warehouse (asset ``warehouse``): full on a home without one, else what changed."""
    settings = load_settings(home.reference)
    publication = publish_warehouse(home, _reference(home), memory_limit=settings.duckdb_memory_limit)
    return {"records": sum(publication.counts.values()), "tables": len(publication.counts),
            "parts_read": publication.parts_read, "parts_kept": publication.parts_kept}  # fmt: skip


def floor(home: Home, cycle: str, args: argparse.Namespace) -> StageResult:
    """The floor: a bare DuckDB ``read_csv`` → Parquet of every raw landed file (CSV as text columns, EMI as
    one text column a line), nothing else, DuckDB's default threads like the pipeline's sessions."""
    import duckdb

    out = home.root / "floor"
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in home.landing.glob("*/*") if p.is_file())
    records = 0
    con = duckdb.connect(":memory:")
    try:
        threads = int(scalar(con, "select current_setting('threads')"))
        for i, path in enumerate(files):
            target = out / f"{i:03d}.parquet"
            con.execute(floor_statement(path, target))
            records += int(scalar(con, f"select count(*) from read_parquet('{target.as_posix()}')"))
    finally:
        con.close()
    return {"records": records, "files": len(files), "threads": threads}


def floor_statement(path: Path, target: Path) -> str:
    """The floor's statement for one raw file: CSV as text columns, EMI as one text column a line."""
    if path.suffix == ".emi":
        source = (
            f"read_csv('{path.as_posix()}', header = false, delim = '\\t', quote = '', escape = '', "
            "columns = {'record': 'VARCHAR'})"
        )
    else:
        source = f"read_csv('{path.as_posix()}', header = false, all_varchar = true, null_padding = true)"
    return f"copy (select * from {source}) to '{target.as_posix()}' (format parquet)"


STAGES: dict[str, Callable[[Home, str, argparse.Namespace], StageResult]] = {
    "intake": intake,
    "mediation": mediation,
    "rating": rating,
    "rerating": rating,
    "charges": charges,
    "invoices": invoices,
    "commissions": commissions,
    "documents": documents,
    "deliveries": deliveries,
    "warehouse": warehouse,
    "republishing": warehouse,
    "floor": floor,
    "documents_naive": documents_naive,
}


def peak_rss_mib() -> float:
    """This process's own peak RSS (``VmHWM``: the high-water mark of its address space since exec, so
    none of the parent's memory at fork time), or its render workers' if larger."""
    own = 0.0
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024
    if not own:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return max(own, workers)


def main(argv: list[str] | None = None) -> int:
    """Run one stage and write its result JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--cycle", required=True)
    parser.add_argument("--out", required=True, type=Path, help="where to write the result JSON")
    parser.add_argument("--documents", type=int, default=DOCUMENTS, help="invoices to render and deliver")
    parser.add_argument(
        "--naive-documents", type=int, default=NAIVE_DOCUMENTS, help="the first of them rendered naively"
    )
    args = parser.parse_args(argv)
    home = Home(args.home.resolve()).ensure()
    os.environ["CDRBILL_HOME"] = str(home.root)
    started = time.perf_counter()
    result = STAGES[args.stage](home, args.cycle, args)
    result["wall_s"] = time.perf_counter() - started
    # render workers are the pool's fork server's children: their peak comes with the stage's result
    result["peak_rss_mib"] = max(peak_rss_mib(), float(result.get("render_worker_peak_rss_mib", 0.0)))
    args.out.write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
