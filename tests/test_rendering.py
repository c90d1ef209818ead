"""The PDF rendering machinery (pipeline/rendering.py): pool and single process give the same PDFs, unchanged
invoices are never rendered again, the shipped font covers every printed string. Real WeasyPrint, real files,
PDFs read back with pypdf."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from pypdf import PdfReader
from test_documents import TEMPLATES, make_doc, pdf_text

from pipeline.fonts import INVOICE_FONTS
from pipeline.rendering import POOL_MIN_DOCUMENTS, SIDECAR_SUFFIX, render_invoice_pdfs


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def test_pool_and_single_process_give_the_same_pdfs(tmp_path: Path) -> None:
    docs = [
        make_doc(f"INV-0000010{i}", "es" if i % 2 else "en", n_usage=60 if i == 0 else 5)
        for i in range(POOL_MIN_DOCUMENTS + 1)
    ]
    pooled = render_invoice_pdfs(docs, tmp_path / "pool", TEMPLATES, workers=2)
    single = render_invoice_pdfs(docs, tmp_path / "single", TEMPLATES, workers=1)

    assert [r.invoice_number for r in pooled] == [d.invoice_number for d in docs]
    assert [r.pages for r in pooled] == [r.pages for r in single] == [2] * len(docs)
    assert [r.sha256_of_html for r in pooled] == [r.sha256_of_html for r in single]
    for p, s in zip(pooled, single, strict=True):
        assert p.path.parent == tmp_path / "pool" and s.path.parent == tmp_path / "single"
        assert pdf_text(p.path) == pdf_text(s.path)
        # byte for byte: a PDF does not depend on which process drew it, nor on what it drew before
        assert p.path.read_bytes() == s.path.read_bytes()
        assert len(PdfReader(p.path).pages) == p.pages
    # the itemised page of a 60-call invoice really is in both
    assert "(40 calls)" in pdf_text(pooled[0].path)[1]
    assert not list((tmp_path / "pool").glob(".*.tmp"))


def test_unchanged_invoices_are_skipped_and_changed_ones_rendered(tmp_path: Path) -> None:
    docs = [make_doc(f"INV-0000020{i}", n_usage=3) for i in range(POOL_MIN_DOCUMENTS + 1)]
    first = render_invoice_pdfs(docs, tmp_path, TEMPLATES, workers=2)
    before = snapshot(tmp_path)
    assert (tmp_path / f"INV-00000200{SIDECAR_SUFFIX}").read_text().split() == [first[0].sha256_of_html, "2"]

    # the same invoices again, through the pool: not one file is written
    assert render_invoice_pdfs(docs, tmp_path, TEMPLATES, workers=2) == first
    assert snapshot(tmp_path) == before

    # one invoice changes: only its PDF and sidecar are written again
    changed = [replace(docs[1], account_name="Ana García López"), *docs[:1], *docs[2:]]
    third = render_invoice_pdfs(changed, tmp_path, TEMPLATES, workers=2)
    after = snapshot(tmp_path)
    rewritten = {name for name in after if after[name] != before[name]}
    assert rewritten == {"INV-00000201.pdf", f"INV-00000201{SIDECAR_SUFFIX}"}
    assert third[0].sha256_of_html != first[1].sha256_of_html
    assert "Ana García López" in pdf_text(tmp_path / "INV-00000201.pdf")[0]


def test_a_renderer_change_renders_again_and_a_broken_pair_is_repaired(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    out = tmp_path / "out"
    docs = [make_doc("INV-00000301"), make_doc("INV-00000302", "es"), make_doc("INV-00000303")]
    first = render_invoice_pdfs(docs, out, templates, workers=1)

    # a sidecar from before page counts were recorded (hash only) still skips: the pages are counted
    sidecar = out / f"INV-00000301{SIDECAR_SUFFIX}"
    sidecar.write_text(f"{first[0].sha256_of_html}\n")
    # a PDF lost after its sidecar was written is rendered again
    (out / "INV-00000302.pdf").unlink()
    before = snapshot(out)
    again = render_invoice_pdfs(docs, out, templates, workers=1)
    assert again == first
    after = snapshot(out)
    assert {name for name in after if after[name] != before.get(name)} == {
        "INV-00000302.pdf",
        f"INV-00000302{SIDECAR_SUFFIX}",
    }

    # the stylesheet changes (the HTML does not): every invoice is rendered again
    css = templates / "invoice.css"
    css.write_text(css.read_text(encoding="utf-8") + "\n/* restyled */\n", encoding="utf-8")
    stamp = os.stat(out / "INV-00000303.pdf").st_mtime_ns
    third = render_invoice_pdfs(docs, out, templates, workers=1)
    assert all(t.sha256_of_html != f.sha256_of_html for t, f in zip(third, first, strict=True))
    assert os.stat(out / "INV-00000303.pdf").st_mtime_ns != stamp


def test_the_shipped_font_prints_every_string_and_falls_back_beyond_it(tmp_path: Path) -> None:
    covered: set[int] = set()
    for name in INVOICE_FONTS.values():
        font = TTFont(TEMPLATES / "fonts" / name)
        covered |= set(font.getBestCmap())
        assert (TEMPLATES / "fonts" / name).stat().st_size < 60_000  # a subset, not the 750 KB original
    for strings in sorted((TEMPLATES / "strings").glob("*.json")):
        text = json.dumps(json.loads(strings.read_text(encoding="utf-8")), ensure_ascii=False)
        missing = sorted({c for c in text if ord(c) not in covered and c not in "\n\t"})
        assert not missing, f"{strings.name}: characters {missing} not in templates/fonts (pipeline/fonts.py)"

    # a name outside the subset (Greek) still prints, from the system's sans-serif
    [rendered] = render_invoice_pdfs([make_doc(name="Ελένη Παπαδοπούλου")], tmp_path, TEMPLATES, workers=1)
    assert "Ελένη Παπαδοπούλου" in pdf_text(rendered.path)[0]
    fonts = {
        str(font["/BaseFont"])
        for page in PdfReader(rendered.path).pages
        for font in page["/Resources"]["/Font"].values()
    }
    assert any("Invoice-Sans" in name for name in fonts), fonts


def test_a_pool_run_with_unchanged_invoices_between_keeps_the_input_order(tmp_path: Path) -> None:
    # 12 invoices, every other one already rendered: the six others go through the pool in chunks fed while
    # the HTML is built, the skipped ones in between are not touched, and the results keep the input order
    docs = [make_doc(f"INV-0000040{i:02d}", "es" if i % 3 else "en", n_usage=3) for i in range(12)]
    first = render_invoice_pdfs(docs[::2], tmp_path, TEMPLATES, workers=2)
    before = snapshot(tmp_path)
    results = render_invoice_pdfs(docs, tmp_path, TEMPLATES, workers=2)
    assert [r.invoice_number for r in results] == [d.invoice_number for d in docs]
    assert results[::2] == first
    after = snapshot(tmp_path)
    assert all(after[name] == before[name] for name in before)  # the unchanged six: not one byte written
    for doc, rendered in zip(docs[1::2], results[1::2], strict=True):
        assert rendered.render_cpu_s > 0 and rendered.pages == 2
        assert (tmp_path / f"{doc.invoice_number}{SIDECAR_SUFFIX}").read_text().split() == [
            rendered.sha256_of_html,
            "2",
        ]
        assert doc.invoice_number in pdf_text(rendered.path)[0]
    assert not list(tmp_path.glob(".*.tmp"))


def test_no_sidecar_names_a_pdf_that_did_not_land(tmp_path: Path) -> None:
    # the PDF cannot be moved into place (a folder squats its name): the run fails, and no sidecar claims
    # that invoice as rendered — a matching sidecar always means a complete PDF
    docs = [make_doc("INV-00000501", n_usage=3), make_doc("INV-00000502", n_usage=3)]
    (tmp_path / "INV-00000502.pdf").mkdir()
    with pytest.raises(OSError):
        render_invoice_pdfs(docs, tmp_path, TEMPLATES, workers=1)
    assert not (tmp_path / f"INV-00000502{SIDECAR_SUFFIX}").exists()
    assert not list(tmp_path.glob(".*.tmp"))
    # once the folder is gone the same call renders it, and leaves the first invoice as it was
    (tmp_path / "INV-00000502.pdf").rmdir()
    [one, two] = render_invoice_pdfs(docs, tmp_path, TEMPLATES, workers=1)
    assert two.pages == 2 and (tmp_path / f"INV-00000502{SIDECAR_SUFFIX}").is_file()


def test_a_pool_run_leaves_no_font_folder_behind(tmp_path: Path) -> None:
    # each render worker's FontConfiguration copies the shipped fonts into a folder of its own under the
    # temporary folder: a run in its own interpreter, TMPDIR pointed here, leaves none of them behind once it
    # is over (before, every worker of every run left its folder: ~70 KB each, hundreds in a shared /tmp)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from test_documents import TEMPLATES, make_doc; "
        "from pipeline.rendering import POOL_MIN_DOCUMENTS, render_invoice_pdfs; "
        "docs = [make_doc(f'INV-0000060{i}', n_usage=3) for i in range(POOL_MIN_DOCUMENTS + 2)]; "
        "print(len(render_invoice_pdfs(docs, sys.argv[2], TEMPLATES, workers=2)))"
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "TMPDIR": str(temp)}
    tests = Path(__file__).resolve().parent
    run = subprocess.run(
        [sys.executable, "-c", script, str(tests), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.split() == [str(POOL_MIN_DOCUMENTS + 2)]
    assert len(list(out.glob("*.pdf"))) == POOL_MIN_DOCUMENTS + 2
    # the pool's fork server leaves when its last client has: give it a moment
    deadline = time.monotonic() + 30
    while list(temp.glob("weasyprint-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(temp.glob("weasyprint-*")) == []
