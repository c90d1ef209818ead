"""``cdrbill quote`` and ``cdrbill explain``: support's view of rating, through the same SQL as the cycle."""

import json

from assets.cli import main


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_quote_for_an_account_prices_like_the_cycle(sample_cycle, capsys):
    home, _ = sample_cycle
    # golden G3: ACC-0001 (RC-STD) to a UK mobile, 31 s: 30/6 → 36 s × 0.25 / 60 = 0.15 + 0.05 connect = 0.20
    code, out = run(capsys, "--home", str(home.root), "quote", "--account", "ACC-0001", "--to", "+447700900123",
                    "--start", "2026-10-12 20:10", "--duration", "31", "--json")  # fmt: skip
    fields = json.loads(out)
    assert code == 0
    assert (fields["charge"], fields["billed units"], fields["rate row: prefix"]) == ("0.200000", "36", "447")
    assert (fields["price book"], fields["jurisdiction"], fields["start (UTC)"]) == (
        "PB-RES-STD",
        "international",
        "2026-10-13 01:10:00",  # 20:10 CDT
    )


def test_quote_by_rate_card_and_what_cannot_be_priced(sample_cycle, capsys):
    home, _ = sample_cycle
    # RC-TX-AG02: 0.01/min 30/6, 83 s → 84 s × 0.01 / 60 = 0.014 (half_even to 4)
    code, out = run(capsys, "--home", str(home.root), "quote", "--rate-card", "RC-TX-AG02", "--state", "TX",
                    "--to", "+12125550199", "--start", "2026-10-12 20:00", "--duration", "83", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["charge"] == "0.014000"
    # no India row on RC-TX-AG02: the quote says why, with exit code 1
    code, out = run(capsys, "--home", str(home.root), "quote", "--price-book", "PB-AG02-TX", "--to", "+919812345678",
                    "--start", "2026-10-12 20:00", "--duration", "60")  # fmt: skip
    assert code == 1 and "NO_RATE" in out
    assert run(capsys, "--home", str(home.root), "quote", "--rate-card", "RC-NOPE", "--to", "+1", "--start",
               "2026-10-12 20:00", "--duration", "1")[0] == 2  # fmt: skip


def test_explain_an_event_of_the_cycle(sample_cycle, capsys):
    home, _ = sample_cycle
    code, out = run(capsys, "--home", str(home.root), "explain", "--cycle", "2026-10", "--number", "+13125550100",
                    "--at", "2026-10-13 01:10:00", "--json")  # fmt: skip
    fields = json.loads(out)
    assert code == 0
    assert (fields["charge"], fields["destination"], fields["increments (steps)"]) == (
        "0.200000",
        "United Kingdom - Mobile",
        "30/6",
    )
    file_id, line = fields["event"].split()[1], fields["event"].split()[3]
    code, text = run(capsys, "--home", str(home.root), "explain", "--cycle", "2026-10", "--file-id", file_id,
                     "--line", line)  # fmt: skip
    assert code == 0 and "exact charge" in text and "0.200000" in text
