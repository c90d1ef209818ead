"""The rating commands of ``cdrbill``: ``explain`` (how a rated event was priced), ``quote`` (what an event
would cost, through the same rating SQL) and ``rerate`` (re-rate a cycle after a rate fix)."""

import argparse
import json
import sys
from datetime import UTC, datetime

from pipeline.cycles import BillCycle
from pipeline.engine import session
from pipeline.explanation import explanation, find_events, format_explanation
from pipeline.home import Home
from pipeline.late_usage import billed_in
from pipeline.quote import QuoteError, QuoteRequest, quote
from pipeline.reference import ReferenceDataError, load_reference
from pipeline.rerating import rerate_cycle
from pipeline.settings import load_settings
from pipeline.state import open_state

RATING_COMMANDS = ("explain", "quote", "rerate")


def add_rating_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``explain``, ``rerate`` and ``quote`` to the ``cdrbill`` parser."""
    explain = commands.add_parser("explain", help="how a cycle's event was priced (or why it was not)")
    explain.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")
    explain.add_argument("--file-id", type=int, help="usage file id (with --line)")
    explain.add_argument("--line", type=int, help="line number in the file")
    explain.add_argument("--number", help="charged number in E.164, e.g. +13125550100")
    explain.add_argument("--account", help="account id")
    explain.add_argument("--at", help="start time in UTC, YYYY-MM-DD HH:MM[:SS], with --number or --account")
    explain.add_argument("--json", action="store_true", help="print JSON")

    rerate = commands.add_parser(
        "rerate", help="rate a cycle again after a rate fix: delta report, adjustments if the cycle is final"
    )
    rerate.add_argument("--cycle", required=True, help="bill cycle YYYY-MM")

    q = commands.add_parser("quote", help="price a hypothetical event with the cycle's rating rules")
    q.add_argument("--account", help="price as this account (its agent, plan, state and number)")
    q.add_argument("--price-book", help="or: price with this price book's rate card")
    q.add_argument("--rate-card", help="or: price with this rate card")
    q.add_argument("--state", help="the line's service state (default: the account's; IL otherwise)")
    q.add_argument("--from", dest="from_number", help="calling number (default: the account's first number)")
    q.add_argument("--to", dest="called_number", help="called number in E.164 (+…) or a short code")
    q.add_argument("--start", required=True, help="start, local time of the line's state: YYYY-MM-DD HH:MM")
    q.add_argument("--duration", type=int, help="seconds (voice)")
    q.add_argument("--units", type=int, help="messages, bytes or events (other services)")
    q.add_argument("--service", default="voice", choices=["voice", "sms", "mms", "data", "vas"])
    q.add_argument("--sms-chars", type=int, help="SMS length in characters")
    q.add_argument("--event-code", help="value-added event code")
    q.add_argument("--json", action="store_true", help="print JSON")


def run_rating_command(home: Home, args: argparse.Namespace) -> int:
    """Run ``explain``, ``rerate`` or ``quote``; exit code 0, or 2 with a message on stderr."""
    try:
        if args.command == "explain":
            return _explain(home, args)
        if args.command == "rerate":
            return _rerate(home, args)
        return _quote(home, args)
    except (QuoteError, ReferenceDataError, ValueError, FileNotFoundError) as error:
        print(f"cdrbill {args.command}: {error}", file=sys.stderr)
        return 2


def _explain(home: Home, args: argparse.Namespace) -> int:
    if args.file_id is None and args.number is None and args.account is None:
        raise ValueError("give --file-id and --line, or --number / --account (and --at)")
    events = find_events(
        home.lake,
        args.cycle,
        file_id=args.file_id,
        line_no=args.line,
        number=args.number,
        account_id=args.account,
    )
    if args.at:
        at = datetime.fromisoformat(args.at)
        events = events.filter(events["start_utc"] == at)
    if events.height == 0 and args.file_id is not None:
        # late usage: the call falls in this (closed) cycle but is billed in the next open one
        late = billed_in(home.lake, args.cycle, args.file_id, args.line)
        for line, billed in late.items():
            where = f"billed in {billed}" if billed else "waiting for the next open cycle to run"
            print(f"file {args.file_id} line {line}: late usage from cycle {args.cycle}, {where}")
            if billed:
                print(f"  details: cdrbill explain --cycle {billed} --file-id {args.file_id} --line {line}")
        if late:
            return 0
    if events.height == 0:
        raise ValueError(
            f"no event of cycle {args.cycle} matches; check the file id / line or number and time"
        )
    found = [explanation(row) for row in events.iter_rows(named=True)]
    if args.json:
        print(json.dumps(found if len(found) > 1 else found[0], indent=2))
    else:
        print("\n\n".join(format_explanation(fields) for fields in found))
    return 0


def _quote(home: Home, args: argparse.Namespace) -> int:
    units = args.duration if args.service == "voice" else args.units
    if units is None:
        raise ValueError("give --duration (voice) or --units (other services)")
    request = QuoteRequest(
        called_number=args.called_number,
        start_local=datetime.fromisoformat(args.start),
        units=units,
        service=args.service,
        account_id=args.account,
        price_book_id=args.price_book,
        rate_card_id=args.rate_card,
        state=args.state,
        from_number=args.from_number,
        sms_chars=args.sms_chars,
        event_code=args.event_code,
    )
    fields = quote(load_reference(home.reference), request)
    print(json.dumps(fields, indent=2) if args.json else format_explanation(fields))
    return 0 if "charge" in fields else 1


def _rerate(home: Home, args: argparse.Namespace) -> int:
    cycle = BillCycle.parse(args.cycle).key
    settings = load_settings(home.reference)
    with (
        session(
            load_reference(home.reference),
            memory_limit=settings.rating_memory_limit,
            spill_dir=home.root / "tmp",
        ) as con,  # fmt: skip
        open_state(home.state_db) as state,
    ):
        counts = rerate_cycle(con, home.lake, state, cycle, posted_at=datetime.now(UTC).replace(tzinfo=None))
    print(
        f"rerated cycle {cycle}: {counts['rated']} rated, {counts['suspended']} suspended; "
        f"{counts['changed_events']} events changed, {counts['accounts_changed']} accounts; "
        f"{counts['adjustments_posted']} adjustments posted (report: lake/rerate/cycle={cycle}/)"
    )
    return 0
