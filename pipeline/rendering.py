"""Invoice PDFs from invoice HTML: WeasyPrint with its stylesheet and fonts prepared once per process, a
process pool over the cores fed as the HTML is built, and no work at all for an invoice whose content has not
changed.

Billing rules applied here:

* each invoice is its own PDF, written aside, flushed to disk and moved into place (``os.replace``), so a crash
  never leaves half a PDF; its content-hash sidecar is written after the PDF's rename is on disk, so a
  matching sidecar always means a complete PDF;
* an invoice whose content hash (its HTML plus the renderer's inputs: stylesheet, fonts, WeasyPrint version)
  matches its sidecar is not rendered again: re-running a cycle rewrites no document.

Speed (docs/SCALE_LOG.md, "Documents"): the stylesheet is parsed and its two shipped fonts registered once per
process (``_prepared``), not once per invoice; the pool's workers are forked from a fork server that has
imported WeasyPrint, started before the first HTML is built; chunks of invoices go to the pool as soon as
their HTML is built, so building and rendering overlap; in a worker a writer thread stores each PDF (its
disk flushes) while the next invoice is laid out; the shipped fonts are a 33 KB Latin subset, cut down
again per invoice by HarfBuzz (``font_subsetting``) instead of fontTools; each invoice is read through
``html_document.InvoiceHTML`` (XHTML parsed by the C XML parser, a user-agent stylesheet without the note
rules invoices never use: the same PDF for ~15 % less CPU).
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import resource
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, islice
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.util import Finalize
from pathlib import Path
from typing import Any

from pipeline.documents import INVOICE_CSS, InvoiceDocument, html_sha256, render_invoice_html
from pipeline.durable import fsync_path, write_atomically
from pipeline.faults import crash_point

FONTS_DIR = "fonts"
# More documents than this (and workers > 1) go through the process pool; below it the pool's start-up
# costs more than it saves.
POOL_MIN_DOCUMENTS = 4
# Invoices handed to a worker at a time: enough to amortise the round trip, few enough that both workers
# finish together (the last chunk is the tail of the run).
MAX_CHUNK = 8
SIDECAR_SUFFIX = ".html.sha256"

# Python's cyclic garbage collector while rendering: WeasyPrint allocates ~10^5 objects per invoice, and the
# default first-generation threshold (700) runs a collection every few hundred boxes. 50,000 cuts the CPU
# per invoice by ~15 % (docs/SCALE_LOG.md); the garbage is still collected, just in larger batches.
GC_THRESHOLD = (50_000, 20, 20)

# job: invoice number, HTML, content hash, PDF path, sidecar path, templates folder
RenderJob = tuple[str, str, str, str, str, str]


@dataclass(frozen=True)
class RenderedDocument:
    """One invoice PDF on disk (and its itemisation CSV beside it, when the account gets one)."""

    invoice_number: str
    path: Path
    pages: int
    sha256_of_html: str  # the content hash: the HTML and the renderer's inputs (see ``content_hash``)
    itemisation_csv: Path | None = None
    # what rendering it cost, for the benchmark (0 when it was skipped): CPU seconds of the render and the
    # peak RSS of the process that rendered it; not part of the document's identity
    render_cpu_s: float = field(default=0.0, compare=False)
    peak_rss_mib: float = field(default=0.0, compare=False)


# --------------------------------------------------------------------------------------------- fingerprint


@lru_cache(maxsize=8)
def _file_digest(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def renderer_fingerprint(templates_dir: Path) -> str:
    """SHA-256 over what shapes a PDF besides its HTML: the stylesheet, the user-agent stylesheet, the shipped
    fonts, the WeasyPrint version and the font subsetter (rule: a new font or renderer renders every invoice
    again; nothing else does)."""
    import weasyprint

    from pipeline.font_subsetting import subsetter
    from pipeline.html_document import invoice_ua_stylesheet_text

    templates_dir = Path(templates_dir).resolve()
    files = [templates_dir / INVOICE_CSS, *sorted((templates_dir / FONTS_DIR).glob("*.ttf"))]
    digest = hashlib.sha256(f"weasyprint {weasyprint.__version__}\n".encode())
    digest.update(f"font subsetting {subsetter()}\n".encode())
    digest.update(
        f"user agent {hashlib.sha256(invoice_ua_stylesheet_text().encode()).hexdigest()}\n".encode()
    )
    for path in files:
        st = path.stat()
        digest.update(f"{path.name} {_file_digest(path, st.st_mtime_ns, st.st_size)}\n".encode())
    return digest.hexdigest()


def content_hash(html: str, fingerprint: str) -> str:
    """The invoice's content hash: its HTML's SHA-256 and the renderer's fingerprint, hashed together."""
    return hashlib.sha256(f"{html_sha256(html)} {fingerprint}".encode("ascii")).hexdigest()


# --------------------------------------------------------------------------------------------- per process

_PREPARED: dict[str, tuple[Any, Any]] = {}
# Let the FontConfiguration remove its font folder while the interpreter is still whole (at module teardown
# its ``__del__`` would find ``shutil.rmtree`` gone and print an ignored exception).
atexit.register(_PREPARED.clear)


def _prepared(templates_dir: str) -> tuple[Any, Any]:
    """The parsed invoice stylesheet and the FontConfiguration holding its ``@font-face`` fonts, made once per
    process, with WeasyPrint subsetting fonts through HarfBuzz (``font_subsetting``)."""
    ready = _PREPARED.get(templates_dir)
    if ready is None:
        import weasyprint
        from weasyprint.text.fonts import FontConfiguration

        from pipeline.font_subsetting import install

        install()

        font_config = FontConfiguration()
        css = weasyprint.CSS(filename=str(Path(templates_dir) / INVOICE_CSS), font_config=font_config)
        _PREPARED.clear()
        ready = _PREPARED[templates_dir] = (css, font_config)
    return ready


def _init_worker(templates_dir: str) -> None:
    """Pool initializer: parse the stylesheet and register its fonts once for this worker, then move
    everything alive so far out of the garbage collector's sight and collect in larger batches (the worker
    only renders).

    The FontConfiguration copies the shipped fonts into a folder of its own under the temporary folder and
    removes it when it is dropped; a worker leaves through ``os._exit``, which runs no ``atexit`` hook, so
    multiprocessing's exit finalizers drop it instead (``_drop_prepared``; each worker left one behind before)."""
    _prepared(templates_dir)
    Finalize(None, _drop_prepared, exitpriority=0)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _drop_prepared() -> None:
    """A worker's exit: drop its stylesheet and FontConfiguration, and collect the garbage of its last renders
    that still points at them (computed styles in reference cycles), so that the FontConfiguration goes now and
    removes its font folder (rule: a run leaves nothing behind in the temporary folder)."""
    _PREPARED.clear()
    gc.collect()


@contextmanager
def _batched_gc() -> Iterator[None]:
    """Collect garbage in larger batches while this process renders, then restore its own thresholds."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


RenderOutcome = tuple[str, str, int, str, float, float]


def _lay_out(job: RenderJob) -> tuple[bytes, int]:
    """One invoice's PDF bytes and page count, with this process's prepared stylesheet and fonts."""
    from pipeline.html_document import InvoiceHTML

    _, html, _, _, _, templates_dir = job
    css, font_config = _prepared(templates_dir)
    document = InvoiceHTML(html, base_url=templates_dir).render(stylesheets=[css], font_config=font_config)
    pdf = document.write_pdf()
    assert pdf is not None
    return pdf, len(document.pages)


def _store(job: RenderJob, pdf: bytes, pages: int) -> float:
    """Put one rendered invoice in place (rule: a matching sidecar always means a complete PDF): the PDF
    written aside, flushed to disk and renamed into place, the folder flushed so the rename is on disk too, and
    only then the sidecar naming its content hash. The sidecar is not flushed: losing it in a power cut only
    renders the invoice again. Returns the CPU seconds of this thread."""
    started = time.thread_time()
    _, _, sha, pdf_path, sidecar_path, _ = job
    target = write_atomically(Path(pdf_path), pdf)
    fsync_path(target.parent)
    write_atomically(Path(sidecar_path), f"{sha}\n{pages}\n".encode(), durable=False)
    return time.thread_time() - started


def _render_chunk(jobs: list[RenderJob]) -> list[RenderOutcome]:
    """Worker: lay out a chunk of invoices one after the other while a writer thread stores each finished
    one (``_store``: its disk flushes wait on the disk, not on the CPU, and overlap the next layout); returns
    once every PDF and sidecar of the chunk is in place, in the chunk's order."""
    stored = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf-writer") as writer:
        for job in jobs:
            started = time.thread_time()
            pdf, pages = _lay_out(job)
            stored.append((job, pages, time.thread_time() - started, writer.submit(_store, job, pdf, pages)))
        outcomes = [
            (job[0], job[3], pages, job[2], layout_s + future.result())
            for job, pages, layout_s, future in stored
        ]
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [(*outcome, peak_rss_mib) for outcome in outcomes]


def _existing_pdf_pages(pdf_path: Path, sidecar_path: Path, sha: str) -> int | None:
    """Page count of an already rendered PDF of exactly this content, or None if it must be rendered."""
    try:
        recorded = sidecar_path.read_text(encoding="ascii", errors="replace").split()
    except FileNotFoundError:
        return None
    if not recorded or recorded[0] != sha or not pdf_path.is_file():
        return None
    if len(recorded) > 1 and recorded[1].isdigit():
        return int(recorded[1])
    try:  # a sidecar without its page count: count the pages of the PDF
        from pypdf import PdfReader

        return len(PdfReader(pdf_path).pages)
    except Exception:  # unreadable PDF: render it again
        return None


def _pool_context() -> Any:
    """Workers forked from a fork server that has imported WeasyPrint once: they start in milliseconds, and
    unlike a plain fork they inherit none of the caller's open files (the home lock, DuckDB files) or threads,
    so a killed run leaves no worker holding its lock."""
    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload(
        ["weasyprint", "pipeline.rendering", "pipeline.html_document", "pipeline.font_subsetting", "uharfbuzz"]
    )
    return context


def _start_fork_server() -> None:
    """Start the pool's fork server now, so that it imports WeasyPrint (~1 s) while this process fingerprints
    the renderer and builds the first invoices' HTML, instead of after."""
    if _pool_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _chunk_size(remaining: int, workers: int) -> int:
    """Invoices per chunk when ``remaining`` invoices are left: at most MAX_CHUNK, and smaller towards the end
    so that the workers finish together."""
    return max(1, min(MAX_CHUNK, remaining // (workers * 4)))


def _chunks(jobs: Iterator[tuple[int, RenderJob]], total: int, workers: int) -> Iterator[list[RenderJob]]:
    """Group ``(position, job)`` pairs (position: the invoice's place among ``total``) into chunks, each handed
    on as soon as it is complete."""
    chunk: list[RenderJob] = []
    size = 0
    for position, job in jobs:
        if not chunk:
            size = _chunk_size(total - position, workers)
        chunk.append(job)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _render_jobs(
    jobs: Iterator[tuple[int, RenderJob]], total: int, workers: int, templates_dir: str
) -> Iterator[RenderOutcome]:
    """Render the jobs as they come: in this process when there are few, else chunk by chunk in a pool of
    ``workers`` processes started on the first chunk, each chunk submitted as soon as its invoices' HTML is
    built (the pool renders while this process builds the next ones). At most ``3 × workers`` chunks are in
    flight, so the HTML of a large cycle is never all in memory; outcomes come in input order."""
    head = list(islice(jobs, POOL_MIN_DOCUMENTS + 1))
    if workers <= 1 or len(head) <= POOL_MIN_DOCUMENTS:
        _prepared(templates_dir)
        with _batched_gc():
            for chunk in _chunks(chain(head, jobs), total, 1):
                yield from _render_chunk(chunk)
        return
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_pool_context(),
        initializer=_init_worker,
        initargs=(templates_dir,),
    ) as pool:
        in_flight: deque[Future[list[RenderOutcome]]] = deque()
        for chunk in _chunks(chain(head, jobs), total, workers):
            in_flight.append(pool.submit(_render_chunk, chunk))
            while in_flight and (in_flight[0].done() or len(in_flight) > 3 * workers):
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()


def _jobs_to_render(
    docs: list[InvoiceDocument],
    out_dir: Path,
    templates_dir: Path,
    skipped: dict[str, RenderedDocument],
) -> Iterator[tuple[int, RenderJob]]:
    """Build each invoice's HTML and content hash in turn; an invoice whose sidecar holds that hash goes to
    ``skipped`` (rule: unchanged content is not rendered again), the others are yielded with their position."""
    fingerprint = renderer_fingerprint(templates_dir)
    for position, doc in enumerate(docs):
        html = render_invoice_html(doc, templates_dir)
        sha = content_hash(html, fingerprint)
        pdf_path = out_dir / f"{doc.invoice_number}.pdf"
        sidecar = out_dir / f"{doc.invoice_number}{SIDECAR_SUFFIX}"
        pages = _existing_pdf_pages(pdf_path, sidecar, sha)
        if pages is not None:
            skipped[doc.invoice_number] = RenderedDocument(doc.invoice_number, pdf_path, pages, sha)
        else:
            yield position, (doc.invoice_number, html, sha, str(pdf_path), str(sidecar), str(templates_dir))


def render_invoice_pdfs(
    docs: Iterable[InvoiceDocument],
    out_dir: Path,
    templates_dir: Path,
    workers: int = 2,
) -> list[RenderedDocument]:
    """Render one ``<invoice_number>.pdf`` per invoice (rule: atomic write; unchanged content not re-rendered).

    Returns the documents in input order. PDFs whose sidecar ``<invoice_number>.html.sha256`` holds the
    invoice's current content hash are left untouched; the others are rendered by ``workers`` processes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    templates_dir = Path(templates_dir).resolve()
    docs = list(docs)
    seen: set[str] = set()
    for doc in docs:
        if doc.invoice_number in seen:
            raise ValueError(f"invoice {doc.invoice_number} appears twice in one render batch")
        seen.add(doc.invoice_number)
    # invoices never rendered (no sidecar) will be: start the pool's fork server before anything else
    unrendered = sum(not (out_dir / f"{doc.invoice_number}{SIDECAR_SUFFIX}").exists() for doc in docs)
    if workers > 1 and unrendered > POOL_MIN_DOCUMENTS:
        _start_fork_server()

    results: dict[str, RenderedDocument] = {}
    jobs = _jobs_to_render(docs, out_dir, templates_dir, results)
    outcomes = _render_jobs(jobs, len(docs), workers, str(templates_dir))
    for invoice_number, path, pages, sha, cpu_s, rss in outcomes:
        results[invoice_number] = RenderedDocument(
            invoice_number, Path(path), pages, sha, render_cpu_s=cpu_s, peak_rss_mib=rss
        )
        crash_point("documents.rendered")
    return [results[doc.invoice_number] for doc in docs]
