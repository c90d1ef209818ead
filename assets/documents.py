"""Document and delivery assets: PDF invoices, and their delivery by e-mail (Maildir outbox) or paper."""

import base64
import os

import dagster as dg

from assets.bounces import bounces
from assets.metadata import counts, rows_md
from assets.partitions import bill_cycles
from assets.resources import CdrbillHome
from assets.shards import cycle_market_shards, shard_of
from pipeline.bounces import bounce_counts, preference_overrides
from pipeline.delivery import deliver_invoices, delivery_items
from pipeline.einvoice import write_einvoices
from pipeline.engine import session
from pipeline.home import TEMPLATES_DIR
from pipeline.itemisation import write_itemisation_csvs
from pipeline.preview import write_preview
from pipeline.rendering import RenderedDocument, render_invoice_pdfs
from pipeline.shards import shard_accounts
from pipeline.smtp import transport_for
from pipeline.state import open_state
from pipeline.statements import invoice_document_batches as build_document_batches


@dg.op
def render_market_shard(context: dg.OpExecutionContext, cdrbill: CdrbillHome, shard_key: str) -> dict:
    """The documents of one market shard's invoices: PDFs (unchanged ones not rendered again), itemisation CSVs
    and Factur-X e-invoices, each its own file written aside and renamed in. Returns their counts."""
    home, settings = cdrbill.home(), cdrbill.settings()
    reference = cdrbill.reference()
    folder = home.documents / context.partition_key
    with session(reference) as con:
        accounts = shard_accounts(con, shard_of(cdrbill, shard_key))
    rendered: list[RenderedDocument] = []
    levels, einvoices, einvoices_written = {"full": 0, "summary": 0, "csv": 0}, 0, 0
    # a batch of invoices at a time: their models, PDFs, CSVs and e-invoices, then the next (memory bounded)
    for docs in build_document_batches(
        home.lake,
        context.partition_key,
        reference,
        home.root / "tmp",
        settings,
        accounts=accounts,
        memory_limit=settings.duckdb_memory_limit,
    ):
        batch = render_invoice_pdfs(docs, folder, TEMPLATES_DIR, workers=settings.render_workers)
        rendered += write_itemisation_csvs(docs, batch, folder)
        einvoices_written += write_einvoices(docs, batch, TEMPLATES_DIR, settings)
        einvoices += sum(1 for d in docs if d.einvoice)
        for doc in docs:
            levels[doc.itemisation] += 1
    context.log.info(f"market shard {shard_key}: {len(rendered)} documents")
    return {
        "documents": [(r.invoice_number, r.pages) for r in rendered],
        "levels": levels,
        "einvoices": einvoices,
        "einvoices_written": einvoices_written,
    }


@dg.op(out=dg.Out(dg.Nothing))
def collect_invoice_documents(context: dg.OpExecutionContext, cdrbill: CdrbillHome, shards: list[dict]):
    """The cycle's documents from its shards: their counts, and a preview of the first invoice's page 1."""
    home = cdrbill.home()
    folder = home.documents / context.partition_key
    rendered = sorted(document for shard in shards for document in shard["documents"])
    preview = {}
    if rendered:
        png = write_preview(folder, rendered[0][0], scale=0.75)
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        preview = {
            "preview_png": dg.MetadataValue.path(str(png)),
            "preview": dg.MetadataValue.md(
                f"First page of {rendered[0][0]}:\n\n![page 1](data:image/png;base64,{encoded})"
            ),
        }
    levels = {level: sum(shard["levels"][level] for shard in shards) for level in ("full", "summary", "csv")}
    return dg.Output(
        None,
        metadata={
            **counts(
                {
                    "documents": len(rendered),
                    "pages": sum(pages for _, pages in rendered),
                    "itemised_full": levels["full"],
                    "summary_only": levels["summary"],
                    "csv_attachments": levels["csv"],
                    "einvoices": sum(shard["einvoices"] for shard in shards),
                    "einvoices_written": sum(shard["einvoices_written"] for shard in shards),
                    "market_shards": len(shards),
                }
            ),
            **preview,
            "dagster/row_count": len(rendered),
            "folder": dg.MetadataValue.path(str(folder)),
            "documents_list": rows_md(
                [{"invoice": number, "pages": pages} for number, pages in rendered], 10
            ),
        },
    )


@dg.graph_asset(
    partitions_def=bill_cycles,
    group_name="documents",
    kinds={"pdf"},
    ins={"invoices": dg.AssetIn(dagster_type=dg.Nothing)},
)
def invoice_documents(invoices):
    """One PDF per finalised invoice (Jinja2 + WeasyPrint): balance and summary by section, taxes apart,
    itemised usage per service number (or a CSV beside it), Factur-X e-invoices for the accounts that ask;
    unchanged invoices are not rendered again; rendered per market shard (one step each). Metadata shows a
    preview of the first invoice's page 1."""
    return collect_invoice_documents(cycle_market_shards(invoices).map(render_market_shard).collect())


@dg.asset(
    partitions_def=bill_cycles,
    group_name="delivery",
    kinds={"email"},
    deps=[invoice_documents, bounces, "cycle_approval"],
)
def deliveries(context: dg.AssetExecutionContext, cdrbill: CdrbillHome) -> dg.MaterializeResult:
    """Each invoice delivered exactly once: e-mail (SMTP when configured, else the Maildir outbox) with the PDF
    attached, or the PDF into the print folder; accounts without a usable address or switched to paper after
    bounces get paper. Nothing before the cycle's approval (cycle_approval)."""
    # --- approval gate (issue 6, branch post6) ---
    from assets.approval import approval_metadata
    from pipeline.approval import current_approval

    with open_state(cdrbill.home().state_db) as state:
        approved = current_approval(state, context.partition_key) is not None
    if not approved:
        context.log.warning(f"cycle {context.partition_key}: pending approval, nothing delivered")
        return dg.MaterializeResult(metadata=approval_metadata(cdrbill, context.partition_key))
    # --- end of approval gate ---
    home, settings = cdrbill.home(), cdrbill.settings()
    reference = cdrbill.reference()
    # delivery reads each invoice's header, lines and itemisation level, never its calls: models without them
    docs = [
        doc
        for batch in build_document_batches(
            home.lake,
            context.partition_key,
            reference,
            home.root / "tmp",
            settings,
            memory_limit=settings.duckdb_memory_limit,
            with_usage=False,
        )
        for doc in batch
    ]
    transport = transport_for(
        os.environ,
        home.outbox,
        settings.sender_email,
        attempts=settings.smtp_attempts,
        retry_delay_s=settings.smtp_retry_delay_s,
    )
    with open_state(home.state_db) as state:
        overrides = preference_overrides(state)
        items = delivery_items(docs, reference.accounts, home.documents / context.partition_key, overrides)
        report = deliver_invoices(
            state,
            items,
            home.outbox,
            home.print_dir / context.partition_key,
            settings.sender_email,
            TEMPLATES_DIR,
            transport=transport,
        )
        bounced = bounce_counts(state, context.partition_key)
    return dg.MaterializeResult(
        metadata={
            **counts(
                {
                    "emailed": report.emailed,
                    "printed": report.printed,
                    "bounced_hard": bounced["hard"],
                    "bounced_soft": bounced["soft"],
                    "failed_retryable": report.failed_retryable,
                    "rejected": report.rejected,
                    "switched_to_paper": report.switched_to_paper,
                    "already_delivered": report.skipped_already_delivered,
                    "fallback_to_paper": report.fallback_to_paper,
                    "recovered_by_message_id": report.recovered_from_outbox,
                    "resent_same_message_id": report.resent_same_message_id,
                }
            ),
            "transport": report.transport,
            "dagster/row_count": report.emailed + report.printed,
            "outbox": dg.MetadataValue.path(str(home.outbox)),
            "print_folder": dg.MetadataValue.path(str(home.print_dir / context.partition_key)),
            "failures": rows_md(
                [{"invoice": k, "reason": v} for k, v in sorted(report.failures.items())], 20
            ),
        }
    )
