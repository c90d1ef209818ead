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
    section         varchar not null,    -- recurring | one_time | usage | discounts | taxes | adjustments | late_fees
    category        varchar not null,    -- plan, addon, …, voice, discount, government_tax, regulatory_fee, …
    tax_category    varchar,             -- what taxes see: the charge category (voice_interstate, …) or the tax kind
    provider        varchar,             -- who the charge is for (truth-in-billing): the carrier or the authority
    service_number  varchar,
    jurisdiction    varchar,             -- state whose tax applies to the line or that the tax belongs to
    code            varchar,             -- plan/product/order id, serial number, call jurisdiction, tax code, …
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
    status          varchar not null,    -- sending (intent) | sent | failed (retry next run) | rejected (5xx)
    delivered_at    timestamp not null,  -- when the row last changed (the hand-over, for sent)
    primary key (invoice_number, channel)
);
-- e-mail delivery (pipeline/delivery.py): attempts used, the last failure's reason (never a secret), transport
alter table delivery_ledger add column if not exists attempts integer;
alter table delivery_ledger add column if not exists last_error varchar;
alter table delivery_ledger add column if not exists transport varchar;

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

-- --- bill run (issue 5): balances, credit notes, suppressed bills ---

-- homes created before these columns existed
alter table invoice_lines add column if not exists tax_category varchar;
alter table invoice_lines add column if not exists provider varchar;

-- Payments received (from payments.csv), posted once by the finalisation of the cycle they were received in.
create table if not exists payments (
    payment_id      varchar primary key,
    account_id      varchar not null,
    received_on     date not null,
    amount          decimal(18, 2) not null,
    method          varchar not null,
    reference       varchar,
    posted_cycle    varchar not null,
    posted_at       timestamp not null
);

-- Payments applied to invoices, oldest invoice first; what is not applied stays a credit on the account.
create table if not exists payment_allocations (
    payment_id      varchar not null,
    invoice_number  varchar not null,
    amount          decimal(18, 2) not null,
    allocated_cycle varchar not null,
    primary key (payment_id, invoice_number)
);

-- Disputed invoice amounts: held (no late fee on them) while open; a resolution posts an adjustment.
create table if not exists disputes (
    dispute_id      varchar primary key,
    account_id      varchar not null,
    invoice_number  varchar not null,
    amount          decimal(18, 2) not null,
    reason          varchar not null,
    opened_on       date not null,
    status          varchar not null,    -- open | resolved
    resolved_on     date,
    credit_granted  decimal(18, 2),
    approved_by     varchar,
    adjustment_id   varchar              -- the dispute_resolution adjustment it posted
);

-- Credit notes: own gapless series, each referencing the finalised invoice it reduces; never changed.
create table if not exists credit_notes (
    credit_note_number  varchar primary key,
    series              varchar not null,
    sequence_no         bigint not null,
    invoice_number      varchar not null,
    account_id          varchar not null,
    issue_date          date not null,
    currency            varchar not null,
    amount              decimal(18, 2) not null,   -- > 0: the amount credited
    reason              varchar not null,
    approved_by         varchar not null,
    issued_at           timestamp not null,
    carried_on_invoice  varchar                     -- the later invoice whose balance shows it
);

-- The lines of a credit note (a credit of several lines, e.g. a usage credit and its tax): each credits an
-- amount > 0, with its own description or the invoice line it corrects; credit_notes.amount = Σ amount.
-- Credit notes issued before this table existed have no rows here: their one line is the whole amount.
create table if not exists credit_note_lines (
    credit_note_number  varchar not null,
    line_no             integer not null,
    description         varchar,                    -- null: the corrected invoice line's description
    invoice_line_no     integer,                    -- the line of the original invoice it corrects, if any
    amount              decimal(18, 2) not null,    -- > 0: the amount credited by this line
    primary key (credit_note_number, line_no)
);

-- Accounts that had charges in a cycle but no invoice, and why (e.g. ZERO_AMOUNT under zero_bill_policy).
create table if not exists suppressed_bills (
    cycle       varchar not null,
    account_id  varchar not null,
    reason      varchar not null,
    recorded_at timestamp not null,
    primary key (cycle, account_id)
);

-- The balance block of each invoice: previous balance − payments − credit notes = balance forward;
-- + this invoice's total = amount due. Written with the invoice, never changed.
create table if not exists invoice_balances (
    invoice_number    varchar primary key,
    previous_balance  decimal(18, 2) not null,
    payments          decimal(18, 2) not null,
    credit_notes      decimal(18, 2) not null,
    balance_forward   decimal(18, 2) not null,
    current_charges   decimal(18, 2) not null,
    amount_due        decimal(18, 2) not null,
    disputed_held     decimal(18, 2) not null,   -- part of the amount due under open dispute
    past_due          decimal(18, 2) not null    -- undisputed amount past due (+ grace) at the issue date
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

-- ---- issue 6 (branch post6): approval gate, print batches, payment reminders ----
-- A person's approval of a cycle's delivery (nothing is e-mailed, printed or reminded before it). Revoked only
-- while nothing of the cycle has been delivered; a revoked approval stays, and a later approval gets the next no.
create table if not exists cycle_approvals (
    cycle         varchar not null,
    approval_no   integer not null,
    approved_by   varchar not null,
    approved_at   timestamp not null,
    note          varchar,
    revoked_by    varchar,
    revoked_at    timestamp,
    revoke_note   varchar,
    primary key (cycle, approval_no)
);

-- Each paper document (invoice or payment reminder) in the print batch that carries it: printed once, ever.
create table if not exists print_batch_items (
    document_id   varchar primary key,   -- the invoice number or the reminder id
    kind          varchar not null,      -- invoice | reminder | notice (bounced to paper)
    cycle         varchar not null,
    batch_id      varchar not null,      -- <cycle>-<nn>
    account_id    varchar not null,
    first_page    integer not null,
    pages         integer not null,      -- including a blank page added for duplex
    sha256        varchar not null,      -- of the document's own PDF
    batched_at    timestamp not null
);

-- Payment reminders (dunning): one per invoice and level, ever; written after the notice was sent.
create table if not exists payment_reminders (
    reminder_id      varchar primary key,   -- REM-<invoice_number>-<level>
    invoice_number   varchar not null,
    level            varchar not null,      -- reminder | second_notice | suspension_notice (settings)
    cycle            varchar not null,      -- the cycle run that sent it
    account_id       varchar not null,
    as_of            date not null,
    days_past_due    integer not null,
    past_due_amount  decimal(18, 2) not null,  -- undisputed open amount of the invoice on as_of
    currency         varchar not null,
    channel          varchar not null,      -- email | print
    destination      varchar,
    message_id       varchar,
    sent_at          timestamp not null,
    unique (invoice_number, level)
);

-- --- e-mail bounces (issue 6, pipeline/bounces.py) ---
-- Bounces: one row per recipient result of a delivery status report (RFC 3464) read from the bounce mailbox, or
-- per permanent SMTP refusal at sending. Reading the same report again adds nothing (bounce_id).
create table if not exists bounces (
    bounce_id       varchar primary key, -- sha256 of the report's bytes and recipient; smtp:<Message-ID>
    source          varchar not null,    -- the report's file in the bounce Maildir, or smtp
    message_id      varchar,             -- the original message's Message-ID, when the report names it
    invoice_number  varchar,             -- matched through delivery_ledger (null: unmatched)
    account_id      varchar,
    recipient       varchar,
    matched_by      varchar not null,    -- message_id | recipient | none
    action          varchar not null,    -- failed | delayed | delivered | relayed | expanded | refused
    status          varchar not null,    -- RFC 3463 status, e.g. 5.1.1
    kind            varchar not null,    -- hard (5.x.x) | soft (4.x.x) | success (2.x.x)
    diagnostic      varchar,
    reported_at     timestamp not null,  -- the report's Arrival-Date or Date, else when it was read
    recorded_at     timestamp not null
);

-- Delivery preference overrides: accounts switched from e-mail to paper after bounces (reference data stays
-- read-only; an override wins over accounts.delivery_preference). Delete the row to go back to e-mail.
create table if not exists delivery_preference_overrides (
    account_id      varchar primary key,
    preference      varchar not null,    -- paper
    reason          varchar not null,    -- e.g. "hard bounce 5.1.1 …", "3 soft bounces in a row (last 4.2.2)"
    bounce_id       varchar not null,    -- the bounce that decided it
    cycle           varchar not null,    -- the cycle whose bounce run switched it (the notice is printed with it)
    notice_file     varchar not null,    -- the notice mailed to the account's postal address
    since           timestamp not null
);

-- --- recycling (issue 7, pipeline/recycling.py) ---
-- Recycled records: one row per suspended record a recycle run changed (its fresh reading left suspense or gave
-- another reason) or resubmitted to the rebuild (a mediation/rating reason), and the reason it was suspended for.
-- Written before the file's partition is swapped in and keyed without the run time, so a run killed between the
-- two writes the same row again when re-run (the record is still suspended then); a record stuck for the same
-- reason over many runs keeps one row (recycled_at = the latest run).
create table if not exists recycled_records (
    file_id          bigint not null,
    line_no          bigint not null,
    cycle            varchar not null,      -- the record's cycle
    previous_stage   varchar not null,      -- parse | normalise | mediation | rating (suspense.SUSPENSE_REASONS)
    previous_reason  varchar not null,      -- the suspense reason code it was suspended for
    new_status       varchar not null,      -- ok | suspended | discarded (the fresh reading) | resubmitted
                                            -- (a mediation/rating reason: decided when the cycle is rebuilt)
    new_reason       varchar,               -- the fresh reading's suspense or discard reason, else null
    recycled_at      timestamp not null,
    primary key (file_id, line_no, previous_reason)
);

-- --- late usage (pipeline/late_usage.py) ---
-- Late usage: records whose call falls in a cycle that was already final when they reached the pipeline (their
-- file registered, or the record recycled, after the cycle's finalisation), each routed once to the next open
-- cycle, which bills it. Inserted (never updated) by that cycle's mediation, in one transaction, before the
-- cycle's records are read: a re-run of either cycle finds the same row and routes nothing again.
create table if not exists late_usage (
    file_id       bigint not null,
    line_no       bigint not null,
    call_cycle    varchar not null,      -- the finalised cycle the call falls in
    billed_cycle  varchar not null,      -- the next open cycle, which bills it (or suspends it as too old)
    route         varchar not null,      -- late_file (registered after call_cycle was final) | recycled
    routed_at     timestamp not null,
    primary key (file_id, line_no)
);
