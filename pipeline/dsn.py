"""Reading delivery status notifications (DSN, RFC 3464): which message bounced, for which recipient, how.

Billing rules applied here:

* a bounce is a ``multipart/report; report-type=delivery-status`` message (RFC 3462/6522) whose
  ``message/delivery-status`` part has one block of per-recipient fields (RFC 3464 §2.3) for each recipient;
* the original message is named by the ``Message-ID`` of the returned message or headers (the report's third
  part, RFC 3464 §2 / RFC 6522 §3), else by the report's ``In-Reply-To`` / ``References``;
* the kind comes from the ``Status`` class (RFC 3463): 5.x.x is hard (permanent), 4.x.x soft (transient),
  2.x.x a success (``Action: delivered`` / ``relayed`` / ``expanded``);
* anything else in the bounce mailbox (an auto-reply, spam) is not a report and changes nothing.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message

_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")
_MSGID = re.compile(r"<[^<>\s]+>")
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


def _address(value: str | None) -> str | None:
    """``rfc822; ana@example.com`` → ``ana@example.com`` (RFC 3464 §2.3.2: address-type ; address)."""
    if not value:
        return None
    _, _, address = str(value).partition(";")
    address = address.strip().strip("<>").strip() or str(value).strip()
    return address.lower() or None


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
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
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
