-- state_schema.sql: the ledgers in state.duckdb that the pipeline owns (files seen, invoice numbers,
-- finalised invoices, deliveries). Idempotent: run on every connection.

create table if not exists usage_files (
    file_id           integer primary key,
    source_id         varchar,
    file_name         varchar not null,
    sha256            varchar not null,
    size_bytes        bigint not null,
    registered_at     timestamp not null,
    registered_cycle  varchar not null,
    status            varchar not null,   -- loaded | duplicate_file | quarantined
    reason            varchar,            -- why a file was quarantined
    reason_detail     varchar,
    duplicate_of      integer,            -- file_id of the first copy of a duplicate file
    records           integer,            -- usage records read (every physical record, control records apart)
    control_records   integer,
    stored_path       varchar             -- where the raw file now lives (archive/ or quarantine/)
);

create table if not exists invoice_series (
    series       varchar primary key,
    last_number  bigint not null
);

-- A finalised invoice never changes: rows here are only ever inserted, in one transaction per cycle.
create table if not exists invoices (
    invoice_number  varchar primary key,
    series          varchar not null,
    sequence_no     bigint not null,
    cycle           varchar not null,
    account_id      varchar not null,
    issue_date      date not null,
    due_date        date not null,
    period_start    date not null,
    period_end      date not null,
    currency        varchar not null,
    total_amount    decimal(18, 2) not null,
    finalized_at    timestamp not null,
    unique (cycle, account_id)
);

create table if not exists invoice_lines (
    invoice_number  varchar not null,
    line_no         integer not null,
    section         varchar not null,    -- recurring | usage | taxes
    category        varchar not null,    -- plan | voice | government_tax | regulatory_fee
    service_number  varchar,
    jurisdiction    varchar,             -- state whose tax applies to the line or that the tax belongs to
    code            varchar,             -- plan id or tax code
    description     varchar not null,
    quantity        decimal(18, 6),
    unit            varchar,
    taxable_base    decimal(18, 2),      -- tax lines: the amount the tax was computed on
    rate            decimal(18, 6),      -- plan monthly charge, or tax rate in percent
    amount          decimal(18, 2) not null,
    primary key (invoice_number, line_no)
);

create table if not exists finalized_cycles (
    cycle         varchar primary key,
    invoices      integer not null,
    total_amount  decimal(18, 2) not null,
    finalized_at  timestamp not null
);

-- One row per delivered (invoice, channel): written after the e-mail or print file, so nothing goes twice.
create table if not exists delivery_ledger (
    invoice_number  varchar not null,
    channel         varchar not null,    -- email | print
    cycle           varchar not null,
    account_id      varchar not null,
    message_id      varchar,
    destination     varchar,             -- the e-mail address or the print file
    status          varchar not null,    -- sent
    delivered_at    timestamp not null,
    primary key (invoice_number, channel)
);

-- Adjustments posted to an account (from the adjustments input, a dispute resolution or a rerating after the
-- cycle was final). Pending until an invoice carries them; adjustment_id is deterministic so posting twice is a
-- no-op. amount > 0 is a debit (the customer owes more), amount < 0 a credit.
create table if not exists adjustments (
    adjustment_id   varchar primary key,
    account_id      varchar not null,
    amount          decimal(18, 2) not null,
    currency        varchar not null,
    category        varchar not null,    -- credit | debit | rerate | dispute_resolution
    reason          varchar not null,
    approved_by     varchar not null,
    source          varchar not null,    -- e.g. adjustments.csv row, rerate:2026-10, dispute:DSP-0001
    effective_date  date not null,
    posted_at       timestamp not null,
    invoice_number  varchar              -- the invoice that carried it; null while pending
);

-- Mediation: the sequence numbers each loaded file carries (kind 'file': the number in its name, by the
-- source's file_sequence pattern; kind 'pack': an EMI pack header's number, qualified by its creation date).
-- Another file of the same source with the same sequence but other content is a conflicting resend; the
-- numbers missing between the first and last of a source are its sequence gaps.
create table if not exists file_sequences (
    source_id    varchar not null,
    kind         varchar not null,   -- file | pack
    qualifier    varchar not null,   -- '' for file names; the pack's creation date YYMMDD
    sequence_no  bigint not null,
    file_id      integer not null,
    primary key (source_id, kind, qualifier, sequence_no, file_id)
);
