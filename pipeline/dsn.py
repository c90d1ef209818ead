"""Reading delivery status notifications (DSN, RFC 3464): which message bounced, for which recipient, how.

Billing rules applied here:

* a bounce is a ``multipart/report; report-type=delivery-status`` message (RFC 3462/6522) whose
  ``message/delivery-status`` part has one block of per-recipient fields (RFC 3464 §2.3) for each recipient;
* the original message is named by the ``Message-ID`` of the returned message or headers (the report's third
  part, RFC 3464 §2 / RFC 6522 §3), else by the report's ``In-Reply-To`` / ``References``;
* the kind comes from the ``Status`` class (RFC 3463): 5.x.x is hard (permanent), 4.x.x soft (transient),
  2.x.x a success (``Action: delivered`` / ``relayed`` / ``expanded``);
* a recipient is named in one canonical form, so a report matches the address the e-mail went to however the
  reporting MTA wrote it (``canonical_address``): an RFC 6533 ``utf-8`` address (raw UTF-8 in a
  ``message/global-delivery-status`` part, or ``\\x{HEX}``-escaped in a plain ``message/delivery-status``) is
  decoded, the domain is its Unicode form (IDNA 2008 U-label, UTS 46 mapping: an MTA that reports the A-label
  ``xn--…`` names the same domain), and the address is lower case;
* anything else in the bounce mailbox (an auto-reply, spam) is not a report and changes nothing.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message

import idna

_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")
_MSGID = re.compile(r"<[^<>\s]+>")
_EMBEDDED_UNICODE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")  # RFC 6533 EmbeddedUnicodeChar: \x{HEXPOINT}
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")
KINDS = {"5": "hard", "4": "soft", "2": "success"}


@dataclass(frozen=True)
class DsnRecipient:
    """One recipient's result in a DSN (RFC 3464 §2.3)."""

    original_message_id: str | None  # "<…>" of the message that bounced
    recipient: str | None  # Final-Recipient (else Original-Recipient) address, lower case
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # e.g. 5.1.1
    kind: str  # hard | soft | success
    diagnostic: str | None  # Diagnostic-Code, e.g. "smtp; 550 5.1.1 user unknown"
    arrival: str | None  # Arrival-Date of the per-message block, else the report's Date


def canonical_address(address: str | None) -> str | None:
    """An e-mail address in the one form bounces are matched in: lower case, the domain as its Unicode U-label
    (``zoe@XN--BCHER-KVA.example`` and ``Zoe@bücher.example`` → ``zoe@bücher.example``); an address whose
    domain is not a valid IDNA name is only lower-cased."""
    if not address:
        return None
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().lower() or None
    if domain and (not domain.isascii() or "xn--" in domain.lower()):
        with contextlib.suppress(idna.IDNAError, UnicodeError):  # not a valid IDNA name: as written
            domain = str(idna.decode(idna.encode(domain, uts46=True)))
    return f"{local.lower()}@{domain.lower()}"


def _address(value: object) -> str | None:
    """``rfc822; ana@example.com`` → ``ana@example.com`` (RFC 3464 §2.3.2: address-type ; address); an RFC 6533
    ``utf-8; jos\\x{E9}@example.com`` → ``josé@example.com``; in canonical form (``canonical_address``)."""
    if not value:
        return None
    address_type, _, address = str(value).partition(";")
    address = address.strip().strip("<>").strip() or str(value).strip()
    if address_type.strip().lower() == "utf-8":
        address = _EMBEDDED_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), address)
    return canonical_address(address)


def _first_message_id(*values: object) -> str | None:
    for value in values:
        if value:
            found = _MSGID.search(str(value))
            if found:
                return found.group(0)
    return None


def _returned_message_id(report: Message) -> str | None:
    for part in report.walk():
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner["Message-ID"]:
                return _first_message_id(inner["Message-ID"])
        elif content_type in ("text/rfc822-headers", "message/global-headers"):
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(part.get_payload())
            headers = email.message_from_string(text, policy=email.policy.compat32)
            if headers["Message-ID"]:
                return _first_message_id(headers["Message-ID"])
    return None


def _status_blocks(report: Message) -> list[Message] | None:
    for part in report.walk():
        if part.get_content_type() == "message/global-delivery-status":
            # UTF-8 fields (RFC 6533): the email package reads the part as one message whose body holds the
            # recipient blocks, so its bytes are split into blocks again and each is read as UTF-8 text
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if not isinstance(inner, Message):
                return None
            text = inner.as_bytes().decode("utf-8", errors="replace")
            blocks = [block for block in _BLANK_LINE.split(text.strip()) if block.strip()]
            return [email.message_from_string(block + "\n", policy=email.policy.compat32) for block in blocks]
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                return [block for block in payload if isinstance(block, Message)]
            return None
    return None


def parse_dsn(data: bytes) -> list[DsnRecipient] | None:
    """The per-recipient results of a DSN, or None when ``data`` is not a delivery status report (rule: only
    RFC 3464 reports change a delivery preference)."""
    report = email.message_from_bytes(data, policy=email.policy.compat32)
    if report.get_content_type() != "multipart/report":
        return None
    if str(report.get_param("report-type") or "").lower() not in ("delivery-status", "global-delivery-status"):
        return None
    blocks = _status_blocks(report)
    if not blocks:
        return None
    per_message, recipients = blocks[0], blocks[1:]
    original = _returned_message_id(report) or _first_message_id(report["In-Reply-To"], report["References"])
    arrival = per_message["Arrival-Date"] or report["Date"]
    results = []
    for block in recipients:
        status = (block["Status"] or "").split("(")[0].strip()
        match = _STATUS.match(status)
        if not match:
            continue  # a block without a valid status says nothing we can act on
        diagnostic = block["Diagnostic-Code"]
        results.append(
            DsnRecipient(
                original_message_id=original,
                recipient=_address(block["Final-Recipient"]) or _address(block["Original-Recipient"]),
                action=(block["Action"] or "").strip().lower(),
                status=status,
                kind=KINDS[match.group(1)],
                diagnostic=" ".join(str(diagnostic).split()) if diagnostic else None,
                arrival=str(arrival) if arrival else None,
            )
        )
    return results
