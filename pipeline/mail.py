"""The invoice e-mail: one RFC 5322 message per invoice, built the same way for every transport.

Billing rules applied here:

* the ``Message-ID`` is deterministic per invoice and cycle, so a resend after a crash carries the same id and
  receivers (and our own recovery) recognise it;
* no customer data can add a header: names and addresses go through ``email.headerregistry.Address`` after
  CR/LF, other control characters and Unicode line separators are stripped; an address that is not exactly
  one plain ``local@domain`` is refused (the account then gets paper);
* an internationalised address (RFC 6531: a non-ASCII mailbox name, or a domain in another script) is a usable
  address when its mailbox name has no control, space or separator character and its domain is a valid IDNA
  2008 name (``idna``, UTS 46 mapping); the domain is kept in its Unicode form (U-label) and turned into its
  ASCII form (A-label, ``xn--…``) by ``ascii_addr_spec`` for a server without SMTPUTF8 (pipeline/smtp.py);
* the body is an HTML summary with a plain-text alternative; the PDF and any further document files (the CSV
  itemisation of a large account) are attached.
"""

from __future__ import annotations

import email.policy
import email.utils
import mimetypes
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import idna
from babel.dates import format_date, format_interval
from babel.numbers import format_currency

from pipeline.documents import InvoiceDocument, load_strings, template_environment

MESSAGE_ID_DOMAIN = "cdrbill.invalid"
# C0 and C1 controls, DEL, and the Unicode line/paragraph separators some parsers split lines on
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# what a display name keeps: letters, digits, space and . ' & - (everything else becomes a space); the
# standard library's folding mis-quotes ':' '@' '"' and decodes a literal =?…?= back into raw CR/LF
_NAME_UNSAFE = re.compile(r"[^\w .'&-]+")
_MSGID_PART = re.compile(r"^[A-Za-z0-9._-]+$")
# a host name with a top-level domain of letters, or an internationalised one in its ASCII form (xn--…)
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$"
)
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")


def clean_header_text(value: str) -> str:
    """Strip CR/LF and other control characters from customer text put in a header (rule: no injection)."""
    return " ".join(_CONTROL_CHARS.sub(" ", value).split())


def display_name(value: str) -> str:
    """A customer name made safe for the To/From phrase (rule: no header injection): control characters,
    quotes, specials and ``=?``/``?=`` markers become spaces; letters in any script are kept (they are sent
    RFC 2047-encoded)."""
    return " ".join(_NAME_UNSAFE.sub(" ", clean_header_text(value)).split())


def _local_ok(local: str) -> bool:
    """A mailbox name: ASCII atext and dots (RFC 5322), or with non-ASCII characters (RFC 6531) that are no
    control, format, space or separator characters; at most 64 octets in UTF-8; no leading, trailing or double
    dot."""
    if local.startswith(".") or local.endswith(".") or ".." in local or len(local.encode("utf-8")) > 64:
        return False
    if local.isascii():
        return _LOCAL.match(local) is not None
    return all(
        _LOCAL.match(ch) is not None if ch.isascii() else unicodedata.category(ch)[0] not in "CZ"
        for ch in local
    )


def _domain_u_label(domain: str) -> str | None:
    """The domain as stored: an ASCII host name as it is; an internationalised one in its canonical Unicode form
    (IDNA 2008 with the UTS 46 mapping), or None when it is not a valid IDNA name."""
    if domain.isascii():
        return domain if _DOMAIN.match(domain) else None
    try:
        a_label = idna.encode(domain, uts46=True).decode("ascii")
        return str(idna.decode(a_label)) if _DOMAIN.match(a_label) else None
    except (idna.IDNAError, UnicodeError):
        return None


def parse_recipient(value: str | None) -> Address | None:
    """Return the customer's ``Address``, or None when empty or invalid (rule: such accounts get paper).
    Internationalised addresses (non-ASCII mailbox name or domain) are accepted when valid (rule: see the module
    docstring)."""
    if value is None:
        return None
    candidate = _CONTROL_CHARS.sub("", value).strip()
    if not candidate or candidate.count("@") != 1:
        return None
    local, domain = candidate.rsplit("@", 1)
    u_domain = _domain_u_label(domain)
    if not _local_ok(local) or u_domain is None:
        return None
    if not (
        local + u_domain
    ).isascii():  # the standard parser refuses non-ASCII mailbox names: built by parts
        return Address(username=local, domain=u_domain)
    try:
        addr = Address(addr_spec=candidate)
    except (ValueError, IndexError):
        return None
    if addr.addr_spec != candidate:
        return None
    return addr


def ascii_addr_spec(addr_spec: str) -> str | None:
    """The address as a server without SMTPUTF8 can take it: the domain in its ASCII form (A-label, ``xn--…``);
    None when the mailbox name itself is not ASCII (rule: such an address needs SMTPUTF8)."""
    local, domain = addr_spec.rsplit("@", 1)
    if not local.isascii():
        return None
    return f"{local}@{domain if domain.isascii() else idna.encode(domain, uts46=True).decode('ascii')}"


def has_international_address(message: EmailMessage) -> bool:
    """True when a To/Cc/From address of ``message`` is not ASCII (it must then be written as UTF-8, RFC 6532)."""
    for name in ("To", "Cc", "From"):
        header = message.get(name)
        if header is not None and any(not a.addr_spec.isascii() for a in getattr(header, "addresses", ())):
            return True
    return False


def message_id_for(doc: InvoiceDocument) -> str:
    """Deterministic Message-ID ``<invoice_number.cycle@cdrbill.invalid>`` (rule: detect a resend)."""
    for part in (doc.invoice_number, doc.cycle):
        if not _MSGID_PART.match(part):
            raise ValueError(f"cannot build a Message-ID from {part!r}")
    return f"<{doc.invoice_number}.{doc.cycle}@{MESSAGE_ID_DOMAIN}>"


def sender_address(sender: str) -> Address:
    """The configured sender (``settings.sender_email``, may carry a display name) as a safe ``Address``."""
    name, addr = email.utils.parseaddr(clean_header_text(sender))
    parsed = parse_recipient(addr)
    plain = ascii_addr_spec(parsed.addr_spec) if parsed is not None else None
    if plain is None:
        raise ValueError(
            f"invalid sender address {sender!r}. Fix: sender_email in settings.toml (an ASCII mailbox name)"
        )
    return Address(display_name=display_name(name), addr_spec=plain)


def _attach(msg: EmailMessage, path: Path) -> None:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    maintype, subtype = content_type.split("/", 1)
    if maintype == "text":  # e.g. the CSV itemisation: kept byte for byte (no charset re-encoding)
        maintype, subtype = "application", "csv" if path.suffix.lower() == ".csv" else "octet-stream"
    msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)


def build_invoice_email(
    doc: InvoiceDocument,
    pdf_path: Path,
    recipient: str,
    sender: str,
    templates_dir: Path,
    *,
    sent_at: datetime | None = None,
    attachments: Sequence[Path] = (),
) -> EmailMessage:
    """Build the invoice e-mail: HTML + text body, PDF (and ``attachments``) attached (rule: fixed
    Message-ID, no injection).

    Raises ValueError when ``recipient`` is not a usable address.
    """
    to_addr = parse_recipient(recipient)
    if to_addr is None:
        raise ValueError(f"{doc.invoice_number}: invalid recipient address {recipient!r}")
    templates_dir = Path(templates_dir)
    strings = load_strings(templates_dir, doc.language)
    locale = strings["locale"]
    view: dict[str, Any] = {
        "period": format_interval(doc.period_start, doc.period_end, "yMMMd", locale=locale),
        "total": format_currency(doc.amount_due, doc.currency, locale=locale),  # with the balance forward
        "due_date": format_date(doc.due_date, "long", locale=locale),
        "name": clean_header_text(doc.account_name),
    }

    def t(key: str, **kwargs: Any) -> str:
        return str(strings[key]).format(**kwargs)

    subject = clean_header_text(t("email_subject", invoice_number=doc.invoice_number, period=view["period"]))
    env = template_environment(templates_dir)
    context = {"doc": doc, "s": strings, "t": t, "v": view, "subject": subject}
    text_body = env.get_template("email_body.txt.j2").render(context)
    html_body = env.get_template("email_body.html.j2").render(context)

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender_address(sender)
    # by parts: the standard parser refuses a non-ASCII mailbox name given as one addr_spec (RFC 6531 allows it)
    msg["To"] = Address(
        display_name=display_name(doc.account_name), username=to_addr.username, domain=to_addr.domain
    )
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(sent_at or datetime.now(UTC))
    msg["Message-ID"] = message_id_for(doc)
    msg.set_content(text_body)
    msg.add_alternative(html_body, subtype="html")
    msg.add_attachment(
        Path(pdf_path).read_bytes(),
        maintype="application",
        subtype="pdf",
        filename=f"{doc.invoice_number}.pdf",
    )
    for path in attachments:
        _attach(msg, Path(path))
    return msg
