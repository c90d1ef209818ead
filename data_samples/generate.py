"""Deterministic generator for cdrbill sample data (reference CSVs + landing CDR files).

The same arguments always produce byte-identical files: every random draw comes from one
``random.Random(seed)``, nothing depends on the wall clock, and nothing iterates over an unordered set.

Usage::

    python -m data_samples.generate --out data_samples/sample
    python -m data_samples.generate --out /tmp/big --accounts 20000 --calls-per-account 50

See ``data_samples/README.md`` for the layout of every file and the injected anomalies.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import json
import random
import shutil
import unicodedata
from array import array
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# ----------------------------------------------------------------------------------------------------
# Fixed reference data
# ----------------------------------------------------------------------------------------------------

SOURCES: list[dict[str, str]] = [
    {
        "source_id": "switch-chi",
        "format": "asterisk_csv",
        "timezone": "America/Chicago",
        "default_region": "US",
        "description": "Chicago Asterisk switch (cdr_csv); serves IL/TX/CA/FL numbers; two files per cycle",
    },
    {
        "source_id": "switch-nyc",
        "format": "asterisk_csv",
        "timezone": "America/New_York",
        "default_region": "US",
        "description": "New York Asterisk switch (cdr_csv); serves some NY numbers; one file per cycle",
    },
    {
        "source_id": "ilec-duf",
        "format": "emi_duf",
        "timezone": "America/New_York",
        "default_region": "US",
        "description": "Incumbent carrier daily usage file (EMI 01-01-01 subset); serves other NY numbers",
    },
]

AGENTS: list[dict[str, str]] = [
    {"agent_id": "AG-01", "agent_name": "Lakeshore Telecom Partners", "commission_percent": "8.00"},
    {"agent_id": "AG-02", "agent_name": "Lone Star Connect", "commission_percent": "10.00"},
    {"agent_id": "AG-03", "agent_name": "Empire Resellers", "commission_percent": "7.50"},
]

PLANS: list[dict[str, str]] = [
    {"plan_id": "RES-BASIC", "plan_name": "Residential Basic", "monthly_charge": "19.99", "currency": "USD"},
    {"plan_id": "RES-PLUS", "plan_name": "Residential Plus", "monthly_charge": "34.99", "currency": "USD"},
    {"plan_id": "BIZ-PRO", "plan_name": "Business Pro", "monthly_charge": "49.00", "currency": "USD"},
]

PRICE_BOOKS: list[dict[str, str]] = [
    {
        "price_book_id": pb,
        "agent_id": ag,
        "plan_id": plan,
        "state": st,
        "service": "",
        "rate_card_id": rc,
        "valid_from": "2026-01-01",
        "valid_to": "",
    }
    for pb, ag, plan, st, rc in [
        ("PB-RES-STD", "", "RES-BASIC", "", "RC-STD"),
        ("PB-PLUS-STD", "", "RES-PLUS", "", "RC-STD"),
        ("PB-BIZ", "", "BIZ-PRO", "", "RC-BIZ"),
        ("PB-BIZ-NY", "", "BIZ-PRO", "NY", "RC-BIZ-NY"),
        ("PB-AG02-TX", "AG-02", "RES-BASIC", "TX", "RC-TX-AG02"),
    ]
]

TOLL_FREE = ("1800", "1888", "1877", "1866")
TF_DIALED = ("1800", "1800", "1800", "1888", "1877", "1866")  # random toll-free calls favour 1-800
DESTINATIONS = {
    "1": "United States & Canada",
    "1876": "Jamaica",
    "44": "United Kingdom",
    "447": "United Kingdom - Mobile",
    "52": "Mexico",
    "521": "Mexico - Mobile",
    "91": "India",
    **{p: "Toll-free" for p in TOLL_FREE},
}

# rate card id -> rounding method, rows of (prefix, rate_per_unit, first_increment, increment, connect_fee)
_RC_ROWS: dict[str, tuple[str, list[tuple[str, str, int, int, str]]]] = {
    "RC-STD": (
        "half_up",
        [
            ("1", "0.0200", 6, 6, "0.0000"),
            *[(p, "0.0000", 6, 6, "0.0000") for p in TOLL_FREE],
            ("1876", "0.3500", 60, 60, "0.0000"),
            ("44", "0.0900", 30, 6, "0.0500"),
            ("447", "0.2500", 30, 6, "0.0500"),
            ("52", "0.1200", 60, 60, "0.0000"),
            ("521", "0.1800", 60, 60, "0.0000"),
            ("91", "0.1500", 60, 60, "0.0000"),
        ],
    ),
    "RC-BIZ": (
        "half_up",
        [
            ("1", "0.0150", 60, 60, "0.0000"),
            *[(p, "0.0000", 60, 60, "0.0000") for p in TOLL_FREE],
            ("1876", "0.3000", 60, 60, "0.0000"),
            ("44", "0.0800", 30, 6, "0.0000"),
            ("447", "0.2000", 30, 6, "0.0000"),
            ("52", "0.1000", 60, 60, "0.0000"),
            ("91", "0.1200", 60, 60, "0.0000"),
        ],
    ),
    "RC-BIZ-NY": (
        "half_up",
        [
            ("1", "0.0120", 6, 6, "0.0000"),
            *[(p, "0.0000", 60, 60, "0.0000") for p in TOLL_FREE],
            ("1876", "0.3000", 60, 60, "0.0000"),
            ("44", "0.0800", 30, 6, "0.0000"),
            ("447", "0.2000", 30, 6, "0.0000"),
            ("52", "0.1000", 60, 60, "0.0000"),
            ("91", "0.1200", 60, 60, "0.0000"),
        ],
    ),
    "RC-TX-AG02": (
        "half_even",
        [
            ("1", "0.0100", 30, 6, "0.0000"),
            *[(p, "0.0000", 30, 6, "0.0000") for p in TOLL_FREE],
            ("1876", "0.3000", 60, 60, "0.0000"),
            ("44", "0.0800", 30, 6, "0.0000"),
            ("52", "0.1000", 60, 60, "0.0000"),
        ],
    ),
}

RATE_CARDS: list[dict[str, str]] = [
    {
        "rate_card_id": rc,
        "prefix": prefix,
        "jurisdiction": "",
        "from_second": "0",
        "destination": DESTINATIONS[prefix],
        "rate_per_unit": rate,
        "unit_seconds": "60",
        "first_increment_seconds": str(first),
        "increment_seconds": str(incr),
        "connect_fee": conn,
        "minimum_charge": "0.0000",
        "maximum_charge": "",
        "rounding_method": method,
        "rounding_decimals": "4",
        "time_band": "",
        "event_code": "",
    }
    for rc, (method, rows) in _RC_ROWS.items()
    for prefix, rate, first, incr, conn in rows
]

# the NANP numbering plan sample for jurisdiction: every NPA the generator dials, with its state and local area
NPA_AREAS = {
    "312": ("IL", "Chicago"), "773": ("IL", "Chicago"), "212": ("NY", "New York"), "718": ("NY", "New York"),
    "214": ("TX", "Dallas"), "512": ("TX", "Austin"), "713": ("TX", "Houston"), "415": ("CA", "San Francisco"),
    "213": ("CA", "Los Angeles"), "305": ("FL", "Miami"), "407": ("FL", "Orlando"), "617": ("MA", "Boston"),
    "202": ("DC", "Washington"), "404": ("GA", "Atlanta"), "206": ("WA", "Seattle"), "303": ("CO", "Denver"),
    "602": ("AZ", "Phoenix"), "702": ("NV", "Las Vegas"), "503": ("OR", "Portland"),
}  # fmt: skip
NPA_NXX: list[dict[str, str]] = [
    {"npa": npa, "nxx": "", "country": "US", "state": st, "local_area": area}
    for npa, (st, area) in NPA_AREAS.items()
] + [{"npa": "876", "nxx": "", "country": "JM", "state": "", "local_area": ""}]

STATE_TIME_ZONES: list[dict[str, str]] = [
    {"state": st, "timezone": tz}
    for st, tz in [
        ("IL", "America/Chicago"),
        ("NY", "America/New_York"),
        ("TX", "America/Chicago"),
        ("CA", "America/Los_Angeles"),
        ("FL", "America/New_York"),
    ]
]
# a band set for cards that price by time of day (no sample card uses it yet: sample prices are band-free)
TIME_BANDS: list[dict[str, str]] = [
    {"band_set": "US-PEAK", "day_type": day, "start_time": start, "end_time": end, "time_band": band}
    for day, start, end, band in [
        ("weekday", "00:00", "07:00", "offpeak"),
        ("weekday", "07:00", "19:00", "peak"),
        ("weekday", "19:00", "24:00", "offpeak"),
        ("weekend", "00:00", "24:00", "weekend"),
        ("holiday", "00:00", "24:00", "weekend"),
    ]
]
RATE_CARD_POLICIES: list[dict[str, str]] = [
    {"rate_card_id": rc, "band_set": "", "band_policy": "start", "holidays": "none"} for rc in _RC_ROWS
]

# how each plan counts SMS and data (the sample month is voice only)
PLAN_USAGE_SETTINGS: list[dict[str, str]] = [
    {"plan_id": plan, "sms_charging": sms, "data_rounding": "session", "data_unit": unit}
    for plan, sms, unit in [
        ("RES-BASIC", "segment", "MB"),
        ("RES-PLUS", "message", "MB"),
        ("BIZ-PRO", "message", "KB"),
    ]
]

# plan-included usage (the sample month is voice only, so this allowance leaves its bills unchanged)
ALLOWANCES: list[dict[str, str]] = [
    {
        "allowance_id": "AL-PLUS-DATA",
        "plan_id": "RES-PLUS",
        "service": "data",
        "zone": "domestic",
        "included_units": str(5 * 1024**3),  # 5 GB
    }
]

# tiered pricing on cycle totals (the example table; the sample month has no MMS, so no bill changes)
TIERS: list[dict[str, str]] = [
    {"tier_id": "TI-BIZ-MMS", "plan_id": "BIZ-PRO", "service": "mms", "mode": "graduated", "from_units": f,
     "price_per_unit": p}
    for f, p in [("0", "0.10"), ("1000", "0.05"), ("10000", "0.01")]
]  # fmt: skip

# roaming: visited countries by zone, and each card's surcharge per its unit (the sample month has no roaming)
# Document preferences (issue 6): the golden business account gets an e-invoice with called numbers masked,
# ACC-0003 a summary bill, ACC-0004 its itemisation as a CSV attachment; everyone else the defaults.
DOCUMENT_PREFERENCES: list[dict[str, str]] = [
    {"account_id": "ACC-0002", "itemisation": "full", "mask_called_numbers": "yes", "einvoice": "facturx"},
    {"account_id": "ACC-0003", "itemisation": "summary", "mask_called_numbers": "no", "einvoice": "none"},
    {"account_id": "ACC-0004", "itemisation": "csv", "mask_called_numbers": "no", "einvoice": "none"},
]
ROAMING_ZONES: list[dict[str, str]] = [
    {"country": c, "zone": z} for c, z in [("CA", "NORTH-AMERICA"), ("MX", "NORTH-AMERICA"), ("GB", "EUROPE"),
                                          ("FR", "EUROPE"), ("DE", "EUROPE")]
]  # fmt: skip
ROAMING_SURCHARGES: list[dict[str, str]] = [
    {"rate_card_id": rc, "zone": z, "surcharge_per_unit": p}
    for rc in _RC_ROWS
    for z, p in [("NORTH-AMERICA", "0.1000"), ("EUROPE", "0.5000")]
]

TAX_COLUMNS = [
    "tax_code", "tax_name", "authority", "level", "state", "kind", "method", "rate_percent", "per_line_amount",
    "base", "percent_taxable", "taxes_on", "discounts_reduce_base", "lifeline_exempt", "rounding_method",
    "valid_from", "valid_to", "note",
]  # fmt: skip
ALL_CHARGES = "plan|addon|feature|line|equipment|activation|installation|voice"
# SAMPLE DATA, NOT TAX ADVICE: the rates only look plausible; they must not be used for real billing.
TAXES: list[dict[str, str]] = [
    dict(zip(TAX_COLUMNS, (*row, "2026-01-01", "", "SAMPLE DATA, NOT TAX ADVICE"), strict=True))
    for row in [
        ("FED-USF", "Federal Universal Service Charge", "FCC (Universal Service Fund)", "federal", "",
         "regulatory_fee", "percent", "36.6", "", "plan|line|voice_interstate|voice_international", "37.1", "",
         "yes", "yes", "half_up"),
        ("FED-RCRF", "Regulatory Cost Recovery Fee (carrier charge, not a tax)", "cdrbill Telecom", "federal",
         "", "recovery_fee", "per_line", "", "0.50", "all", "100", "", "yes", "no", "half_up"),
        ("IL-TET", "Illinois Telecommunications Excise Tax", "State of Illinois", "state", "IL",
         "government_tax", "percent", "7.00", "", ALL_CHARGES, "100", "", "yes", "no", "half_up"),
        ("IL-911", "Illinois 911 Surcharge", "State of Illinois", "state", "IL", "government_tax", "per_line",
         "", "1.50", "all", "100", "", "yes", "yes", "half_up"),
        ("NY-SALES", "New York State Sales Tax", "State of New York", "state", "NY", "government_tax",
         "percent", "4.00", "", ALL_CHARGES, "100", "", "yes", "no", "half_up"),
        ("NY-MCTD", "MCTD Telecommunications Surcharge", "State of New York", "state", "NY", "government_tax",
         "percent", "0.375", "", ALL_CHARGES, "100", "", "yes", "no", "up"),
        ("TX-USF", "Texas Universal Service Fund", "Public Utility Commission of Texas", "state", "TX",
         "regulatory_fee", "percent", "3.30", "", ALL_CHARGES, "100", "", "yes", "yes", "up"),
        ("TX-SALES", "Texas Sales Tax", "State of Texas", "state", "TX", "government_tax", "percent", "6.25",
         "", ALL_CHARGES, "100", "TX-USF", "yes", "no", "half_up"),
        ("CA-PUC", "California PUC User Fee", "California Public Utilities Commission", "state", "CA",
         "regulatory_fee", "percent", "0.33", "", ALL_CHARGES, "100", "", "yes", "yes", "half_up"),
        ("CA-LIFELINE", "California LifeLine Surcharge", "California Public Utilities Commission", "state",
         "CA", "regulatory_fee", "percent", "4.75", "", ALL_CHARGES, "100", "", "yes", "yes", "half_up"),
        ("FL-CST", "Florida Communications Services Tax", "State of Florida", "state", "FL",
         "government_tax", "percent", "7.44", "", ALL_CHARGES, "100", "", "no", "no", "half_up"),
    ]
]  # fmt: skip

# Bill run inputs (fixed rows on the golden accounts; see data_samples/README.md).
PRODUCTS = [
    {"product_id": "VM", "product_name": "Voicemail", "product_type": "feature", "monthly_charge": "4.99",
     "billed": "advance", "provider": "cdrbill Telecom"},
    {"product_id": "XLINE", "product_name": "Additional line", "product_type": "line", "monthly_charge": "9.99",
     "billed": "arrears", "provider": "cdrbill Telecom"},
]  # fmt: skip
SUBSCRIPTIONS = [
    {"subscription_id": "SUB-0001", "account_id": "ACC-0001", "product_id": "VM", "service_number": "+13125550100",
     "quantity": "1", "valid_from": "{cycle}-10", "valid_to": ""},
    {"subscription_id": "SUB-0002", "account_id": "ACC-0002", "product_id": "XLINE",
     "service_number": "+12125550202", "quantity": "1", "valid_from": "2024-06-01", "valid_to": ""},
]  # fmt: skip
PLAN_CHANGE_COLUMNS = ["account_id", "effective_on", "old_plan_id", "new_plan_id"]
ORDERS = [
    {"order_id": "ORD-0001", "account_id": "ACC-0003", "charge_date": "{cycle}-16", "charge_type": "activation",
     "description": "Activation fee", "amount": "25.00", "service_number": "+12145550300"},
]  # fmt: skip
EQUIPMENT = [
    {"serial_number": "RT-2024-000117", "account_id": "ACC-0002", "model": "Business router BR-200",
     "ownership": "lease", "price": "5.00", "valid_from": "2024-06-01", "valid_to": ""},
    {"serial_number": "HS-2026-004521", "account_id": "ACC-0003", "model": "Cordless handset CH-5",
     "ownership": "sale", "price": "39.00", "valid_from": "{cycle}-16", "valid_to": ""},
]  # fmt: skip
DISCOUNTS = [
    {"discount_id": "LOYAL-24", "account_id": "", "description": "Loyalty discount 5% (2 years with us)",
     "method": "percent", "value": "5.00", "scope": "plan", "target": "", "min_tenure_months": "24",
     "max_cycles": "", "valid_from": "2026-01-01", "valid_to": ""},
    {"discount_id": "PROMO-WELCOME", "account_id": "ACC-0003", "description": "Welcome offer: $10 off 3 months",
     "method": "amount", "value": "10.00", "scope": "bill", "target": "", "min_tenure_months": "",
     "max_cycles": "3", "valid_from": "{cycle}-16", "valid_to": ""},
]  # fmt: skip
EXEMPTION_COLUMNS = ["account_id", "tax_code", "exemption", "certificate_id", "valid_from", "valid_to"]
ADJUSTMENTS = [
    {"adjustment_id": "ADJ-0001", "account_id": "ACC-0001", "direction": "credit", "amount": "2.00",
     "reason": "Goodwill credit: service outage on Oct 8", "approved_by": "j.rivera",
     "effective_date": "{cycle}-20"},
]  # fmt: skip
PAYMENT_COLUMNS = ["payment_id", "account_id", "received_on", "amount", "method", "reference"]
DISPUTE_COLUMNS = [
    "dispute_id", "account_id", "invoice_number", "amount", "reason", "opened_on", "resolved_on",
    "credit_granted", "approved_by",
]  # fmt: skip
COMMISSION_PLANS = [
    {"commission_plan_id": "CP-01", "agent_id": "AG-01", "plan_id": "", "state": "", "basis": "billed",
     "percent": "8.00", "valid_from": "2026-01-01", "valid_to": ""},
    {"commission_plan_id": "CP-02", "agent_id": "AG-02", "plan_id": "", "state": "", "basis": "billed",
     "percent": "10.00", "valid_from": "2026-01-01", "valid_to": ""},
    {"commission_plan_id": "CP-03", "agent_id": "AG-02", "plan_id": "BIZ-PRO", "state": "", "basis": "collected",
     "percent": "12.00", "valid_from": "2026-01-01", "valid_to": ""},
    {"commission_plan_id": "CP-04", "agent_id": "AG-03", "plan_id": "", "state": "NY", "basis": "billed",
     "percent": "7.50", "valid_from": "2026-01-01", "valid_to": ""},
]  # fmt: skip


ACCOUNT_COLUMNS = [
    "account_id",
    "account_name",
    "account_type",
    "billing_address_line1",
    "billing_city",
    "billing_state",
    "billing_zip",
    "service_state",
    "agent_id",
    "plan_id",
    "currency",
    "language",
    "delivery_preference",
    "email",
    "tax_id",
    "activated_on",
    "deactivated_on",
]
NUMBER_COLUMNS = ["service_number", "account_id", "service_state", "valid_from", "valid_to"]

STATES = ("IL", "NY", "TX", "CA", "FL")
CHI_STATES = ("IL", "TX", "CA", "FL")  # served by switch-chi; NY numbers go to switch-nyc or ilec-duf
STATE_NPAS = {
    "IL": ("312", "773"),
    "NY": ("212", "718"),
    "TX": ("214", "512", "713"),
    "CA": ("415", "213"),
    "FL": ("305", "407"),
}
STATE_CITIES = {  # (city, first zip, last zip)
    "IL": [("Chicago", 60601, 60661), ("Evanston", 60201, 60208)],
    "NY": [("New York", 10001, 10282), ("Brooklyn", 11201, 11239)],
    "TX": [("Dallas", 75201, 75252), ("Austin", 78701, 78759), ("Houston", 77002, 77099)],
    "CA": [("San Francisco", 94102, 94134), ("Los Angeles", 90001, 90089)],
    "FL": [("Miami", 33125, 33199), ("Orlando", 32801, 32839)],
}
DOMESTIC_NPAS = (
    "312",
    "773",
    "212",
    "718",
    "214",
    "512",
    "713",
    "415",
    "213",
    "305",
    "407",
    "617",
    "202",
    "404",
    "206",
    "303",
    "602",
    "702",
    "503",
)

FIRST_NAMES = (
    "Ana",
    "Brian",
    "Carmen",
    "David",
    "Elena",
    "Frank",
    "Grace",
    "Hector",
    "Irene",
    "Jorge",
    "Karen",
    "Luis",
    "Monica",
    "Nathan",
    "Olivia",
    "Pedro",
    "Quinn",
    "Rosa",
    "Samuel",
    "Tanya",
    "Victor",
    "Wendy",
    "Xavier",
    "Yolanda",
    "Zachary",
    "José",
    "Inés",
    "Raúl",
    "Zoë",
    "Chloé",
)
LAST_NAMES = (
    "Alvarez",
    "Bennett",
    "Castillo",
    "Dawson",
    "Esposito",
    "Fischer",
    "Garza",
    "Holloway",
    "Ibarra",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreno",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quintero",
    "Reyes",
    "Sullivan",
    "Thornton",
    "Underwood",
    "Vasquez",
    "Whitaker",
    "Yamada",
    "Zielinski",
    "Peña",
    "Muñoz",
    "Núñez",
    "O'Brien",
    "Brontë",
)
BIZ_WORDS = (
    "Harbor",
    "Summit",
    "Granite",
    "Prairie",
    "Beacon",
    "Copper",
    "Meridian",
    "Northgate",
    "Riverbend",
    "Silverline",
    "Oakridge",
    "Bluewater",
    "Keystone",
    "Redwood",
    "Lakeview",
)
BIZ_KINDS = (
    "Dental Group",
    "Logistics",
    "Bakery",
    "Consulting",
    "Auto Repair",
    "Design Studio",
    "Law Office",
    "Veterinary Clinic",
    "Realty",
    "Printing",
    "Fitness",
    "Accounting",
    "Florist",
    "Plumbing",
)
BIZ_SUFFIXES = ("LLC", "Inc.", "Co.", "Ltd.", "LLP")
STREETS = (
    "Maple",
    "Oak",
    "Cedar",
    "Elm",
    "Willow",
    "Birch",
    "Lakeview",
    "Hillcrest",
    "Sunset",
    "Park",
    "Washington",
    "Lincoln",
    "Jefferson",
    "Riverside",
    "Highland",
    "Orchard",
    "Meadow",
    "Chestnut",
)
STREET_KINDS = ("St", "Ave", "Blvd", "Rd", "Ln", "Dr", "Ct", "Way")

# Line numbers never handed out to random subscribers (golden numbers, golden destinations, unknown caller).
RESERVED_LINES = (100, 111, 123, 199, 200, 201, 202, 300, 999, 9999)
FIRST_LINE, LAST_LINE = 101, 9998  # the line numbers a service number takes in an exchange, RESERVED_LINES aside
# the exchanges (NXX) service numbers take in each NPA, in order: 555 (the fictitious exchange) until its lines run
# out (~9,890 numbers per NPA, ~100k accounts in all), then 556..599 (valid NXX: not N11, not 950/958/959/976), so
# a month of up to ~4 million numbers can be generated; npa_nxx holds whole NPAs, so every one has a jurisdiction
SERVICE_EXCHANGES = tuple(str(nxx) for nxx in range(555, 600))
UNKNOWN_NUMBER = "+13125559999"

# (hour weights) calls skew to daytime and early evening
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 13, 12, 13, 14, 14, 13, 12, 11, 10, 8, 6, 4, 2)
INTL_KINDS = ("44", "447", "52", "521", "91", "1876")
INTL_WEIGHTS = (25, 20, 20, 15, 12, 8)

GOLDEN_ACCOUNTS: list[dict[str, str]] = [
    {
        "account_id": "ACC-0001",
        "account_name": "Maria Lopez",
        "account_type": "residential",
        "billing_address_line1": "1450 W Cermak Rd",
        "billing_city": "Chicago",
        "billing_state": "IL",
        "billing_zip": "60608",
        "service_state": "IL",
        "agent_id": "AG-01",
        "plan_id": "RES-BASIC",
        "currency": "USD",
        "language": "es",
        "delivery_preference": "email",
        "email": "maria.lopez@example.com",
        "tax_id": "900-00-0001",
        "activated_on": "2025-03-01",
        "deactivated_on": "",
    },
    {
        "account_id": "ACC-0002",
        "account_name": "Hudson & Pike Architects LLC",
        "account_type": "business",
        "billing_address_line1": "350 Fifth Ave",
        "billing_city": "New York",
        "billing_state": "NY",
        "billing_zip": "10118",
        "service_state": "IL",
        "agent_id": "AG-02",
        "plan_id": "BIZ-PRO",
        "currency": "USD",
        "language": "en",
        "delivery_preference": "email",
        "email": "billing@hudsonpike.example",
        "tax_id": "00-0000002",
        "activated_on": "2024-06-01",
        "deactivated_on": "",
    },
    {
        "account_id": "ACC-0003",
        "account_name": "Jamal Carter",
        "account_type": "residential",
        "billing_address_line1": "2200 Ross Ave",
        "billing_city": "Dallas",
        "billing_state": "TX",
        "billing_zip": "75201",
        "service_state": "TX",
        "agent_id": "AG-02",
        "plan_id": "RES-BASIC",
        "currency": "USD",
        "language": "en",
        "delivery_preference": "paper",
        "email": "",
        "tax_id": "900-00-0003",
        "activated_on": "",
        "deactivated_on": "",
    },  # activated_on: cycle day 16
]

# golden numbers: (e164, account_id, state, source_id); valid_from = account activation
GOLDEN_NUMBERS = [
    ("+13125550100", "ACC-0001", "IL", "switch-chi"),
    ("+13125550200", "ACC-0002", "IL", "switch-chi"),
    ("+12125550201", "ACC-0002", "NY", "switch-nyc"),
    ("+12125550202", "ACC-0002", "NY", "ilec-duf"),
    ("+12145550300", "ACC-0003", "TX", "switch-chi"),
]

# golden Asterisk calls: id, src (10 digits), day of cycle, HH:MM:SS, dst, billsec (text), duration,
# seconds from start to answer (None = unanswered), disposition, uniqueid sequence, also in the other file
GOLDEN_CALLS: list[tuple[str, str, int, str, str, str, int, int | None, str, int, bool]] = [
    ("G1", "3125550100", 5, "09:15:00", "2125550199", "83", 90, 0, "ANSWERED", 101, True),
    ("G2", "3125550100", 12, "20:00:00", "011442079460000", "10", 15, 5, "ANSWERED", 102, False),
    ("G3", "3125550100", 12, "20:10:00", "011447700900123", "31", 35, 4, "ANSWERED", 103, False),
    ("G4", "3125550100", 13, "08:00:00", "2125550199", "0", 20, None, "NO ANSWER", 104, False),
    ("G5", "3125550200", 7, "14:00:00", "18765550123", "125", 132, 7, "ANSWERED", 105, False),
    ("G6", "3125550200", 8, "10:00:00", "4155550123", "59", 66, 7, "ANSWERED", 106, False),
    ("G7", "2125550201", 9, "11:00:00", "3125550999", "200", 208, 8, "ANSWERED", 107, False),
    ("G9", "2145550300", 20, "23:59:30", "2145550111", "10", 14, 4, "ANSWERED", 109, False),
    ("G10", "2145550300", 21, "12:00:00", "5125550111", "61", 70, 9, "ANSWERED", 110, False),
    ("G11", "2145550300", 22, "09:00:00", "2145550111", "abc", 40, 6, "ANSWERED", 111, False),
    ("G12", "2145550300", 10, "10:00:00", "2145550111", "45", 52, 7, "ANSWERED", 112, False),
]
# golden EMI record G8: from, day, HHMMSS, to, elapsed MMMMSST
GOLDEN_EMI = ("2125550202", 10, "163000", "7135550100", "0012345")

EMI_RECORD_LEN = 175
EMI_COMPANY = "0101"
EMI_PACK_SEQ = "0001"


# ----------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------


def _source_toml(source: dict[str, str]) -> list[str]:
    """One source's settings file (``reference/sources/<source_id>.toml``); the id is the file name."""
    return [f"{key} = {json.dumps(value)}\n" for key, value in source.items() if key != "source_id"]


def _ascii(text: str) -> str:
    """Strip accents and apostrophes so a name can be used in an e-mail address."""
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in norm.lower() if ch.isalnum())


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, str]]) -> int:
    """Write rows as a UTF-8 CSV with a header row and ``\\n`` line endings; return the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _write_lines(path: Path, lines: Sequence[str]) -> int:
    """Write already terminated lines as ASCII/UTF-8 bytes; return the line count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("".join(lines))
    return len(lines)


def _clid(name: str, number: str) -> str:
    """Asterisk caller id field, already quoted: ``\"\"\"Name\"\" <number>\"``."""
    return '"""' + name.replace('"', '""') + '"" <' + number + '>"'


def _ast_line(
    src: str,
    name: str,
    dst: str,
    start: str,
    answer: str,
    end: str,
    duration: int | str,
    billsec: int | str,
    disposition: str,
    uniqueid: str,
    seq: int,
    columns: int = 18,
) -> str:
    """One Asterisk cdr_csv line ending in ``\\n`` (18 columns, or the first ``columns`` for an anomaly)."""
    answer_field = f'"{answer}"' if answer else ""
    dstchannel = "" if disposition == "FAILED" else f"PJSIP/trunk-out-{seq:08x}"
    fields = [
        '""',
        f'"{src}"',
        f'"{dst}"',
        '"from-internal"',
        _clid(name, src),
        f'"PJSIP/{src}-{seq:08x}"',
        f'"{dstchannel}"',
        '"Dial"',
        f'"PJSIP/{dst}@trunk-out,60"',
        f'"{start}"',
        answer_field,
        f'"{end}"',
        str(duration),
        str(billsec),
        f'"{disposition}"',
        '"DOCUMENTATION"',
        f'"{uniqueid}"',
        '""',
    ]
    return ",".join(fields[:columns]) + "\n"


def _emi_detail(call_date: str, from_number: str, to_number: str, connect: str, elapsed: str) -> str:
    """One EMI 01-01-01 detail record (175 characters + ``\\n``); billing number = from number."""
    rec = (
        "010101"
        + call_date
        + from_number
        + "  "
        + "   "
        + to_number
        + "  "
        + " " * 15
        + connect
        + elapsed
        + " " * 45
        + from_number
        + " " * 53
    )
    if len(rec) != EMI_RECORD_LEN:
        raise ValueError(f"bad EMI detail length {len(rec)}")
    return rec + "\n"


def _emi_control(record_id: str, created: str, count: int | None = None) -> str:
    """EMI pack header (20-20-01) or trailer (20-20-02, with the detail count) padded to 175 characters."""
    rec = record_id + created + EMI_COMPANY + EMI_PACK_SEQ + ("" if count is None else f"{count:07d}")
    return rec.ljust(EMI_RECORD_LEN) + "\n"


WRITE_LINES = 65_536  # landing-file lines built in memory at a time
_KEY_SPAN = 1 << 32  # a sort key is start * 2^32 + sequence (or call index): sequences stay below 2^32


def _sort_key(start: int, sequence: int) -> int:
    """One integer ordered like the pair (start, sequence)."""
    return start * _KEY_SPAN + sequence


class _Entries:
    """The lines of one landing file before it is written, compactly: a sort key each, and either a random
    call's index (its line is built when the file is written) or a hand-placed line's text."""

    def __init__(self) -> None:
        self.keys = array("q")
        self.items = array("q")  # >= 0: a random call's index; < 0: -1 - position in `lines`
        self.lines: list[str] = []

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: int, item: int | str) -> None:
        """Add a random call (its index) or a line (its text) under a sort key."""
        self.keys.append(key)
        if isinstance(item, str):
            self.lines.append(item)
            self.items.append(-len(self.lines))
        else:
            self.items.append(item)

    def in_order(self, call_line: Callable[[int], str]) -> Iterator[str]:
        """The lines by sort key; entries with equal keys in the order they were added (a stable sort)."""
        for i in sorted(range(len(self.keys)), key=self.keys.__getitem__):
            item = self.items[i]
            yield call_line(item) if item >= 0 else self.lines[-1 - item]


def _write_entries(
    path: Path,
    entries: _Entries,
    call_line: Callable[[int], str],
    write_lines: int,
    head: Sequence[str] = (),
    tail: Sequence[str] = (),
) -> int:
    """Write a landing file's lines in sort order, ``write_lines`` at a time (bounded memory); return the
    line count, head and tail included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("".join(head))
        batch: list[str] = []
        for line in entries.in_order(call_line):
            batch.append(line)
            if len(batch) >= write_lines:
                fh.write("".join(batch))
                batch.clear()
        fh.write("".join(batch))
        fh.write("".join(tail))
    return len(head) + len(entries) + len(tail)


class _Clock:
    """Turns (day index, seconds) into local timestamps and epochs for one source time zone."""

    def __init__(self, first: date, n_days: int, tz: str) -> None:
        zone = ZoneInfo(tz)
        days = [first + timedelta(days=d) for d in range(n_days + 3)]
        self.dates = [d.isoformat() for d in days]
        # epoch of local midnight, using the UTC offset at local noon of that day (exact except on the
        # few hours around a DST switch, which only affects the uniqueid prefix)
        self.midnight = [
            int(datetime(d.year, d.month, d.day, 12, tzinfo=zone).timestamp()) - 43200 for d in days
        ]

    def stamp(self, day: int, sec: int) -> str:
        """``YYYY-MM-DD HH:MM:SS`` for ``sec`` seconds after local midnight of cycle day index ``day``."""
        day += sec // 86400
        sec %= 86400
        return f"{self.dates[day]} {sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d}"

    def epoch(self, day: int, sec: int) -> int:
        """Unix epoch of a local time."""
        return self.midnight[day] + sec


def _parse_cycle(cycle: str) -> tuple[date, int]:
    """``YYYY-MM`` -> (first day, number of days)."""
    try:
        year, month = (int(p) for p in cycle.split("-"))
        first = date(year, month, 1)
    except ValueError as exc:
        raise ValueError(f"cycle must look like YYYY-MM, got {cycle!r}") from exc
    return first, calendar.monthrange(year, month)[1]


# ----------------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------------


def anomaly_hosts(numbers: Sequence[list[str]], source: str, special: set[int]) -> list[list[str]]:
    """The service numbers of ``source`` that may carry an injected bad line: those of accounts active the whole
    cycle, so the line is suspended for its own fault (not NOT_IN_SERVICE). ``special``: the numbers (ACC-n) of
    the accounts activated or deactivated in or before the cycle."""
    return [row for row in numbers if row[5] == source and int(row[1].removeprefix("ACC-")) not in special]


def generate_month(
    out_dir: Path,
    cycle: str = "2026-10",
    accounts: int = 50,
    calls_per_account: int = 20,
    seed: int = 2026,
    write_lines: int = WRITE_LINES,
) -> dict[str, Any]:
    """Write one billing cycle of sample data under ``out_dir`` and return a summary.

    Writes ``out_dir/reference/*.csv`` (agents, plans, accounts, service_numbers, price_books, rate_cards,
    taxes), ``out_dir/reference/sources/<source_id>.toml`` (one per source) and ``out_dir/landing/<source_id>/...`` (Asterisk cdr_csv files and an EMI file plus
    its resend). Accounts ACC-0001..ACC-0003 and calls G1..G12 are fixed ("golden"); everything else is
    drawn from ``random.Random(seed)`` so the same arguments give byte-identical files. Existing files with
    the same names are overwritten; other files in ``out_dir`` are left alone.

    Args:
        out_dir: directory to write into (created if missing).
        cycle: billing month ``YYYY-MM``; golden calls keep their day of month and time.
        accounts: total number of accounts including the three golden ones (at least 8).
        calls_per_account: average number of random calls per random account.
        seed: seed of the random generator.
        write_lines: lines of a landing file built and written at a time (memory, not content: the files are
            the same whatever it is).

    Returns:
        ``{"cycle", "seed", "accounts", "service_numbers", "files": {relative path: rows or lines},
        "emi_detail_records", "anomalies": {...}, "golden_anomalies": {...}, "accounts_per_state",
        "numbers_per_state", "numbers_per_source", "random_calls"}``.
    """
    if accounts < 8:
        raise ValueError("accounts must be at least 8 (3 golden + 5 random with special roles)")
    if calls_per_account < 1:
        raise ValueError("calls_per_account must be at least 1")
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    first, n_days = _parse_cycle(cycle)
    cycle_end = first + timedelta(days=n_days)  # exclusive
    ym = f"{first.year:04d}{first.month:02d}"
    prev_month_15 = (first - timedelta(days=1)).replace(day=15)

    def cday(day: int) -> str:
        """ISO date of 1-based day ``day`` of the cycle."""
        return (first + timedelta(days=day - 1)).isoformat()

    # ---- accounts and numbers ----
    acc_rows: list[dict[str, str]] = [dict(a) for a in GOLDEN_ACCOUNTS]
    acc_rows[2]["activated_on"] = cday(16)
    # numbers: e164, account_id, state, valid_from, valid_to, source, account name
    num_rows: list[list[str]] = []
    for e164, acc_id, state, source in GOLDEN_NUMBERS:
        acc = acc_rows[int(acc_id[-4:]) - 1]
        num_rows.append([e164, acc_id, state, acc["activated_on"], "", source, acc["account_name"]])

    next_line = {npa: FIRST_LINE for npas in STATE_NPAS.values() for npa in npas}
    next_exchange = {npa: 0 for npa in next_line}  # position in SERVICE_EXCHANGES

    def new_number(state: str) -> str:
        """A new service number in one of the state's NPAs: the next free line of the NPA's current exchange
        (555 first, the next exchange of SERVICE_EXCHANGES once its lines run out)."""
        npa = rng.choice(STATE_NPAS[state])
        line = next_line[npa]
        while line in RESERVED_LINES:
            line += 1
        if line > LAST_LINE:
            next_exchange[npa] += 1
            if next_exchange[npa] == len(SERVICE_EXCHANGES):
                raise ValueError(
                    f"ran out of service numbers in NPA {npa} (exchanges {SERVICE_EXCHANGES[0]}-"
                    f"{SERVICE_EXCHANGES[-1]}); use fewer accounts"
                )
            line = FIRST_LINE
        next_line[npa] = line + 1
        return f"+1{npa}{SERVICE_EXCHANGES[next_exchange[npa]]}{line:04d}"

    last = accounts
    mid_activated, mid_deactivated = rng.sample(range(6, accounts), 2)
    y = first.year
    main_lo, main_hi = date(y - 2, 1, 1).toordinal(), date(y - 1, 12, 31).toordinal()
    late_lo, late_hi = date(y, 1, 1).toordinal(), (first - timedelta(days=1)).toordinal()
    if late_hi < late_lo:
        late_lo, late_hi = main_lo, main_hi

    for i in range(4, accounts + 1):
        acc_id = f"ACC-{i:04d}"
        business = rng.random() < 0.2
        state = rng.choice(STATES)
        if i == 4:
            state = "NY"  # guarantees a random ilec-duf number (EMI anomaly host)
        elif i == 5 and state == "NY":
            state = rng.choice(CHI_STATES)  # guarantees a fully active random switch-chi number
        city, zip_lo, zip_hi = rng.choice(STATE_CITIES[state])
        street = f"{rng.randint(100, 9899)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
        if business:
            name = f"{rng.choice(BIZ_WORDS)} {rng.choice(BIZ_KINDS)} {rng.choice(BIZ_SUFFIXES)}"
            fname, lname = "", ""
        else:
            fname, lname = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            name = f"{fname} {lname}"
        if rng.random() < 0.9:
            activated = date.fromordinal(rng.randint(main_lo, main_hi))
        else:
            activated = date.fromordinal(rng.randint(late_lo, late_hi))
        deactivated = ""
        if i == mid_activated:
            activated = first + timedelta(days=9)
        elif i == mid_deactivated:
            deactivated = cday(20)
        elif i == last:
            deactivated = prev_month_15.isoformat()
            if activated >= prev_month_15:
                activated = prev_month_15 - timedelta(days=200)
        paper = rng.random() < 0.3
        spanish = rng.random() < 0.25
        if business:
            email = f"billing@{_ascii(name.rsplit(' ', 1)[0])}{i}.example"
            tax_id = f"00-{rng.randint(0, 9_999_999):07d}"
            plan = "BIZ-PRO"
        else:
            email = f"{_ascii(fname)}.{_ascii(lname)}{i}@example.com"
            tax_id = f"9{rng.randint(0, 99):02d}-00-{rng.randint(0, 9999):04d}"
            plan = "RES-PLUS" if rng.random() < 0.35 else "RES-BASIC"
        if paper and rng.random() < 0.6:
            email = ""
        acc_rows.append(
            {
                "account_id": acc_id,
                "account_name": name,
                "account_type": "business" if business else "residential",
                "billing_address_line1": street,
                "billing_city": city,
                "billing_state": state,
                "billing_zip": f"{rng.randint(zip_lo, zip_hi):05d}",
                "service_state": state,
                "agent_id": rng.choice(("AG-01", "AG-02", "AG-03")),
                "plan_id": plan,
                "currency": "USD",
                "language": "es" if spanish else "en",
                "delivery_preference": "paper" if paper else "email",
                "email": email,
                "tax_id": tax_id,
                "activated_on": activated.isoformat(),
                "deactivated_on": deactivated,
            }
        )
        n_numbers = rng.randint(2, 4) if business else 1
        other_state = rng.choice([s for s in STATES if s != state]) if business and rng.random() < 0.3 else ""
        for k in range(n_numbers):
            num_state = other_state if (k > 0 and other_state and rng.random() < 0.5) else state
            if num_state == "NY":
                source = "ilec-duf" if (i == 4 and k == 0) or rng.random() < 0.5 else "switch-nyc"
            else:
                source = "switch-chi"
            num_rows.append(
                [new_number(num_state), acc_id, num_state, activated.isoformat(), deactivated, source, name]
            )

    # ---- random calls (column-wise) ------------------------------------------------------------------------
    start_ord = first.toordinal()
    end_ord = cycle_end.toordinal()
    by_account: dict[str, list[int]] = {}
    for idx, row in enumerate(num_rows):
        by_account.setdefault(row[1], []).append(idx)
    windows: list[tuple[int, int]] = []  # day index window [lo, hi) per number
    for row in num_rows:
        lo = max(start_ord, date.fromisoformat(row[3]).toordinal()) - start_ord
        hi = (min(end_ord, date.fromisoformat(row[4]).toordinal()) if row[4] else end_ord) - start_ord
        windows.append((lo, hi))

    c_num: list[int] = []
    c_day: list[int] = []
    spread = calls_per_account // 4
    for acc in acc_rows[3:]:
        active = [n for n in by_account[acc["account_id"]] if windows[n][0] < windows[n][1]]
        if not active:
            continue
        k = rng.randint(calls_per_account - spread, calls_per_account + spread)
        picks = [active[rng.randrange(len(active))] for _ in range(k)]
        c_num.extend(picks)
        c_day.extend([rng.randrange(*windows[n]) for n in picks])
    n_calls = len(c_num)
    # the columns are kept compact (arrays of machine integers, not lists of Python objects): at 10M calls the
    # month must fit in a few GB; the draws are the same, in the same order, as ever (same seed, same bytes)
    c_num_a, c_day_a = array("l", c_num), array("l", c_day)
    del c_num, c_day
    src_of = [row[5] for row in num_rows]
    c_src = [src_of[n] for n in c_num_a]
    is_duf = bytes(s == "ilec-duf" for s in c_src)
    hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=n_calls)
    c_sod = array("l", [h * 3600 + rng.randrange(3600) for h in hours])
    del hours
    disp_u = [rng.random() for _ in range(n_calls)]
    c_disp = [
        "ANSWERED" if (u < 0.92 or duf) else "NO ANSWER" if u < 0.968 else "BUSY" if u < 0.988 else "FAILED"
        for u, duf in zip(disp_u, is_duf, strict=True)
    ]
    del disp_u
    c_bill = array("l", [min(1800, 1 + int(rng.expovariate(1 / 150))) if d == "ANSWERED" else 0 for d in c_disp])
    c_ring = array(
        "l",
        [
            rng.randint(3, 20)
            if d == "ANSWERED"
            else rng.randint(15, 45)
            if d == "NO ANSWER"
            else rng.randint(1, 5)
            if d == "BUSY"
            else 0
            for d in c_disp
        ],
    )
    c_dur = array("l", [b + r for b, r in zip(c_bill, c_ring, strict=True)])
    dst_u = array("d", [rng.random() for _ in range(n_calls)])
    dst_r = array("l", [rng.randrange(10000) for _ in range(n_calls)])
    dom_npa = rng.choices(DOMESTIC_NPAS, k=n_calls)
    intl = rng.choices(INTL_KINDS, weights=INTL_WEIGHTS, k=n_calls)

    def make_dst(u: float, r: int, npa: str, kind: str, duf: bool) -> str:
        if duf:  # EMI carries 10-digit NANP "to" numbers only
            return f"{npa}5550{r % 100 + 100:03d}"
        if u < 0.05:
            if kind == "44":
                return f"011442079460{r % 1000:03d}"
            if kind == "447":
                return f"011447700900{r % 1000:03d}"
            if kind == "52":
                return f"01152555555{r:04d}"
            if kind == "521":
                return f"011521555555{r:04d}"
            if kind == "91":
                return f"01191112345{r:04d}"
            return f"18765550{r % 100 + 100:03d}"
        if u < 0.08:
            return f"{TF_DIALED[r // 100 % 6]}5550{r % 100 + 100:03d}"
        if u < 0.40:
            return f"1{npa}5550{r % 100 + 100:03d}"
        return f"{npa}5550{r % 100 + 100:03d}"

    def c_dst(j: int) -> str:
        """Call ``j``'s dialled number (drawn above; written out only when its line is)."""
        return make_dst(dst_u[j], dst_r[j], dom_npa[j], intl[j], bool(is_duf[j]))

    emi_tenths_off = array("l", [rng.randrange(10) if duf else 0 for duf in is_duf])

    # ---- uniqueids: per switch, sequence in start order ---------------------------------------------------
    clocks = {s["source_id"]: _Clock(first, n_days, s["timezone"]) for s in SOURCES}
    # start order, ties by call index: one integer key per call (the same order as the pair)
    order = sorted(range(n_calls), key=lambda j: (c_day_a[j] * 86400 + c_sod[j]) * _KEY_SPAN + j)
    next_seq = {"switch-chi": 1000, "switch-nyc": 1000, "ilec-duf": 1000}
    c_seq = array("l", bytes(8 * n_calls)) if n_calls else array("l")
    for j in order:
        s = c_src[j]
        c_seq[j] = next_seq[s]
        next_seq[s] += 1
    del order

    # each file's entries: a sort key (start, then sequence number, as one integer) and either a random call's
    # index (its line is written out only when the file is) or the text of a hand-placed line
    chi_a, chi_b, nyc, emi = _Entries(), _Entries(), _Entries(), _Entries()  # chi_a: days 1..15, chi_b: 16..end
    chi_answered = _Entries()  # answered switch-chi calls: key, call index, and which file (0 or 1) in `targets`
    chi_targets = array("b")

    def asterisk_entry(
        src_id: str,
        src10: str,
        name: str,
        dst: str,
        day: int,
        sod: int,
        ring: int | None,
        duration: int | str,
        billsec: int | str,
        disposition: str,
        seq: int,
        columns: int = 18,
        bad_time: str = "",
    ) -> tuple[int, str]:
        clock = clocks[src_id]
        start = bad_time or clock.stamp(day, sod)
        answer = "" if ring is None else (bad_time or clock.stamp(day, sod + ring))
        end = bad_time or clock.stamp(day, sod + int(duration))
        uid = f"{clock.epoch(day, sod)}.{seq}"
        line = _ast_line(
            src10, name, dst, start, answer, end, duration, billsec, disposition, uid, seq, columns
        )
        return _sort_key(10**9 if bad_time else day * 86400 + sod, seq), line

    def route(src_id: str, day: int, key: int, item: int | str) -> int:
        if src_id == "switch-nyc":
            nyc.add(key, item)
            return -1
        target = 0 if day < 15 else 1
        (chi_a if target == 0 else chi_b).add(key, item)
        return target

    clock_duf = clocks["ilec-duf"]

    def call_line(j: int) -> str:
        """The line of random call ``j``: an EMI detail record or an Asterisk line."""
        row = num_rows[c_num_a[j]]
        day, sod = c_day_a[j], c_sod[j]
        if is_duf[j]:
            tenths = c_bill[j] * 10 - emi_tenths_off[j]
            elapsed = f"{tenths // 600:04d}{tenths % 600 // 10:02d}{tenths % 10}"
            stamp = clock_duf.stamp(day, sod)
            return _emi_detail(
                stamp[2:4] + stamp[5:7] + stamp[8:10],
                row[0][2:],
                c_dst(j),
                stamp[11:13] + stamp[14:16] + stamp[17:19],
                elapsed,
            )
        answered = c_disp[j] == "ANSWERED"
        return asterisk_entry(
            c_src[j],
            row[0][2:],
            row[6],
            c_dst(j),
            day,
            sod,
            c_ring[j] if answered else None,
            c_dur[j],
            c_bill[j],
            c_disp[j],
            c_seq[j],
        )[1]

    for j in range(n_calls):
        day = c_day_a[j]
        key = _sort_key(day * 86400 + c_sod[j], c_seq[j])
        if is_duf[j]:
            emi.add(key, j)
            continue
        target = route(c_src[j], day, key, j)
        if c_disp[j] == "ANSWERED" and target >= 0:
            chi_answered.add(key, j)
            chi_targets.append(target)

    # ---- anomalies in the random part ----
    anomalies = {
        "cross_file_duplicates": 0,
        "unknown_subscriber_calls": 0,
        "short_column_lines": 0,
        "impossible_timestamp_lines": 0,
        "non_numeric_billsec_lines": 0,
        "emi_bad_elapsed_records": 0,
        "resent_files": 0,
    }
    n_dup = max(1, round(len(chi_answered) * 0.01))
    # the same picks as sampling the (file, entry) pairs themselves: sample() draws by position
    for i in sorted(rng.sample(range(len(chi_answered)), n_dup), key=chi_answered.keys.__getitem__):
        (chi_b if chi_targets[i] == 0 else chi_a).add(chi_answered.keys[i], chi_answered.items[i])
    del chi_answered, chi_targets
    anomalies["cross_file_duplicates"] = n_dup

    special = {mid_activated, mid_deactivated, last}
    hosts_chi = anomaly_hosts(num_rows[len(GOLDEN_NUMBERS) :], "switch-chi", special)
    hosts_duf = anomaly_hosts(num_rows[len(GOLDEN_NUMBERS) :], "ilec-duf", special)

    def extra_call(src10: str, name: str, columns: int = 18, billsec: str = "", bad_time: str = "") -> None:
        day = rng.randrange(n_days)
        sod = rng.randrange(8 * 3600, 20 * 3600)
        bill = rng.randint(20, 400)
        ring = rng.randint(3, 12)
        dst = f"{rng.choice(DOMESTIC_NPAS)}5550{rng.randrange(100, 200):03d}"
        seq = next_seq["switch-chi"]
        next_seq["switch-chi"] += 1
        entry = asterisk_entry(
            "switch-chi",
            src10,
            name,
            dst,
            day,
            sod,
            ring,
            bill + ring,
            billsec or bill,
            "ANSWERED",
            seq,
            columns,
            bad_time,
        )
        if bad_time:
            chi_b.add(*entry)
        else:
            route("switch-chi", day, *entry)

    for _ in range(3):
        extra_call(UNKNOWN_NUMBER[2:], "WIRELESS CALLER")
    anomalies["unknown_subscriber_calls"] = 3
    host = rng.choice(hosts_chi)
    extra_call(host[0][2:], host[6], columns=12)
    anomalies["short_column_lines"] = 1
    host = rng.choice(hosts_chi)
    extra_call(host[0][2:], host[6], bad_time=f"{first.year:04d}-{first.month:02d}-32 25:61:00")
    anomalies["impossible_timestamp_lines"] = 1
    host = rng.choice(hosts_chi)
    extra_call(host[0][2:], host[6], billsec="abc")
    anomalies["non_numeric_billsec_lines"] = 1
    host = rng.choice(hosts_duf)
    day, sod = rng.randrange(n_days), rng.randrange(8 * 3600, 20 * 3600)
    stamp = clock_duf.stamp(day, sod)
    emi.add(
        *(
            _sort_key(day * 86400 + sod, next_seq["ilec-duf"]),
            _emi_detail(
                stamp[2:4] + stamp[5:7] + stamp[8:10],
                host[0][2:],
                f"{rng.choice(DOMESTIC_NPAS)}5550150",
                stamp[11:13] + stamp[14:16] + stamp[17:19],
                "00A1234",
            ),
        )
    )
    anomalies["emi_bad_elapsed_records"] = 1
    anomalies["resent_files"] = 1

    # ---- golden calls ----
    number_info = {r[0][2:]: r for r in num_rows}
    for _gid, src10, gday, hms, dst, billsec, duration, ring, disp, seq, twice in GOLDEN_CALLS:
        row = number_info[src10]
        h, m, s = (int(p) for p in hms.split(":"))
        entry = asterisk_entry(
            row[5], src10, row[6], dst, gday - 1, h * 3600 + m * 60 + s, ring, duration, billsec, disp, seq
        )
        route(row[5], gday - 1, *entry)
        if twice:
            chi_b.add(*entry)
    g_from, g_day, g_time, g_to, g_elapsed = GOLDEN_EMI
    g_date = cday(g_day)
    emi.add(
        *(
            _sort_key((g_day - 1) * 86400 + int(g_time[:2]) * 3600 + int(g_time[2:4]) * 60 + int(g_time[4:]), 108),
            _emi_detail(g_date[2:4] + g_date[5:7] + g_date[8:10], g_from, g_to, g_time, g_elapsed),
        )
    )

    # ---- write ----
    files: dict[str, int] = {}
    ref = out_dir / "reference"
    for source in SOURCES:
        rel = f"reference/sources/{source['source_id']}.toml"
        files[rel] = _write_lines(out_dir / rel, _source_toml(source))
    files["reference/agents.csv"] = _write_csv(ref / "agents.csv", list(AGENTS[0]), AGENTS)
    files["reference/plans.csv"] = _write_csv(ref / "plans.csv", list(PLANS[0]), PLANS)
    files["reference/accounts.csv"] = _write_csv(ref / "accounts.csv", ACCOUNT_COLUMNS, acc_rows)
    files["reference/service_numbers.csv"] = _write_csv(
        ref / "service_numbers.csv",
        NUMBER_COLUMNS,
        [dict(zip(NUMBER_COLUMNS, r[:5], strict=True)) for r in num_rows],
    )
    files["reference/price_books.csv"] = _write_csv(
        ref / "price_books.csv", list(PRICE_BOOKS[0]), PRICE_BOOKS
    )
    files["reference/rate_cards.csv"] = _write_csv(ref / "rate_cards.csv", list(RATE_CARDS[0]), RATE_CARDS)
    files["reference/taxes.csv"] = _write_csv(ref / "taxes.csv", TAX_COLUMNS, TAXES)
    ym_dash = f"{first:%Y-%m}"
    for name, columns, rows in (
        ("products", list(PRODUCTS[0]), PRODUCTS),
        ("subscriptions", list(SUBSCRIPTIONS[0]), SUBSCRIPTIONS),
        ("plan_changes", PLAN_CHANGE_COLUMNS, []),
        ("orders", list(ORDERS[0]), ORDERS),
        ("equipment", list(EQUIPMENT[0]), EQUIPMENT),
        ("discounts", list(DISCOUNTS[0]), DISCOUNTS),
        ("tax_exemptions", EXEMPTION_COLUMNS, []),
        ("adjustments", list(ADJUSTMENTS[0]), ADJUSTMENTS),
        ("payments", PAYMENT_COLUMNS, []),
        ("disputes", DISPUTE_COLUMNS, []),
        ("commission_plans", list(COMMISSION_PLANS[0]), COMMISSION_PLANS),
    ):
        dated = [{k: v.replace("{cycle}", ym_dash) for k, v in row.items()} for row in rows]
        files[f"reference/{name}.csv"] = _write_csv(ref / f"{name}.csv", columns, dated)
    files["reference/npa_nxx.csv"] = _write_csv(ref / "npa_nxx.csv", list(NPA_NXX[0]), NPA_NXX)
    for name, table in [
        ("state_time_zones", STATE_TIME_ZONES),
        ("time_bands", TIME_BANDS),
        ("rate_card_policies", RATE_CARD_POLICIES),
        ("plan_usage_settings", PLAN_USAGE_SETTINGS),
        ("allowances", ALLOWANCES),
        ("tiers", TIERS),
        ("roaming_zones", ROAMING_ZONES),
        ("roaming_surcharges", ROAMING_SURCHARGES),
        ("document_preferences", DOCUMENT_PREFERENCES),
    ]:
        files[f"reference/{name}.csv"] = _write_csv(ref / f"{name}.csv", list(table[0]), table)

    land = out_dir / "landing"
    last_day = f"{ym}{n_days:02d}"
    for rel, entries in (
        (f"switch-chi/Master-{ym}15.csv", chi_a),
        (f"switch-chi/Master-{last_day}.csv", chi_b),
        (f"switch-nyc/Master-{last_day}.csv", nyc),
    ):
        files[f"landing/{rel}"] = _write_entries(land / rel, entries, call_line, write_lines)
    created = last_day[2:]
    first_emi = f"ilec-duf/DUF-{last_day}.emi"
    files[f"landing/{first_emi}"] = _write_entries(
        land / first_emi,
        emi,
        call_line,
        write_lines,
        head=[_emi_control("202001", created)],
        tail=[_emi_control("202002", created, len(emi))],
    )
    resend = f"ilec-duf/DUF-{last_day}-resend.emi"
    shutil.copyfile(land / first_emi, land / resend)  # the byte-identical resend
    files[f"landing/{resend}"] = files[f"landing/{first_emi}"]

    def tally(values: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in values:
            out[v] = out.get(v, 0) + 1
        return dict(sorted(out.items()))

    return {
        "cycle": cycle,
        "seed": seed,
        "accounts": len(acc_rows),
        "service_numbers": len(num_rows),
        "random_calls": n_calls,
        "files": files,
        "emi_detail_records": len(emi),
        "anomalies": anomalies,
        "golden_anomalies": {
            "cross_file_duplicates": 1,
            "non_numeric_billsec_lines": 1,
            "calls_before_valid_from": 1,
        },
        "special_accounts": {
            "activated_mid_cycle": f"ACC-{mid_activated:04d}",
            "deactivated_mid_cycle": f"ACC-{mid_deactivated:04d}",
            "deactivated_before_cycle": f"ACC-{last:04d}",
        },
        "accounts_per_state": tally([a["service_state"] for a in acc_rows]),
        "numbers_per_state": tally([r[2] for r in num_rows]),
        "numbers_per_source": tally([r[5] for r in num_rows]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``python -m data_samples.generate --out DIR [...]``; prints the summary."""
    parser = argparse.ArgumentParser(
        prog="python -m data_samples.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--cycle", default="2026-10", help="billing month YYYY-MM (default 2026-10)")
    parser.add_argument(
        "--accounts", type=int, default=50, help="number of accounts incl. 3 golden (default 50)"
    )
    parser.add_argument("--calls-per-account", type=int, default=20, help="average random calls per account")
    parser.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    args = parser.parse_args(argv)
    summary = generate_month(args.out, args.cycle, args.accounts, args.calls_per_account, args.seed)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
