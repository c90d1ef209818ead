"""Statements in batches (pipeline/statements.py): the sample cycle's document models built a few invoices at a
time equal the ones built in a single batch — lines, calls in print order, itemisation levels — whatever the batch
size; a market shard gets only its accounts' models; delivery's models without calls keep their counts; nothing is
left in the work folder, even when the reader stops after the first batch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.reference import load_reference
from pipeline.statements import invoice_document_batches

pytestmark = pytest.mark.slow
CYCLE = "2026-10"


@pytest.fixture(scope="module")
def cycle(sample_cycle):
    home, _ = sample_cycle
    return home, load_reference(home.reference)


def _models(home, reference, work: Path, **options):
    return [
        doc
        for batch in invoice_document_batches(home.lake, CYCLE, reference, work, **options)
        for doc in batch
    ]


def test_batches_of_any_size_give_the_same_models(cycle, tmp_path):
    home, reference = cycle
    whole = _models(home, reference, tmp_path, batch_invoices=10_000)
    assert (
        len(whole) == 49 and sum(len(d.usage_items) for d in whole) == sum(d.usage_rows for d in whole) > 800
    )
    assert [d.invoice_number for d in whole] == sorted(d.invoice_number for d in whole)
    for doc in whole:  # the calls in print order: by service number, then start
        assert list(doc.usage_items) == sorted(
            doc.usage_items, key=lambda i: (i.service_number, i.start_local)
        )
    for size in (1, 7, 48):
        batches = list(invoice_document_batches(home.lake, CYCLE, reference, tmp_path, batch_invoices=size))
        assert [len(b) for b in batches][:-1] == [size] * (len(batches) - 1)
        assert [doc for batch in batches for doc in batch] == whole, size
    assert list(tmp_path.iterdir()) == []


def test_a_shard_gets_its_accounts_and_delivery_gets_no_calls(cycle, tmp_path):
    home, reference = cycle
    whole = {d.invoice_number: d for d in _models(home, reference, tmp_path)}
    accounts = {d.account_id for d in whole.values()}
    some = set(sorted(accounts)[::3])
    shard = _models(home, reference, tmp_path, accounts=some, batch_invoices=5)
    assert {d.account_id for d in shard} == some
    assert shard == [d for d in whole.values() if d.account_id in some]
    light = _models(home, reference, tmp_path, with_usage=False, batch_invoices=5)
    assert [replace(d, usage_items=()) for d in whole.values()] == light
    assert {d.itemisation for d in light} == {"full", "summary", "csv"}


def test_nothing_is_left_behind_when_the_reader_stops_early(cycle, tmp_path):
    home, reference = cycle
    batches = invoice_document_batches(home.lake, CYCLE, reference, tmp_path, batch_invoices=5)
    assert len(next(batches)) == 5
    assert [p.suffix for p in tmp_path.iterdir()] == [".parquet"]  # the sorted calls, while batches are read
    batches.close()
    assert list(tmp_path.iterdir()) == []
