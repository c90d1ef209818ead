"""Sending through an SMTP server: its settings from the environment, one reused connection, retries with
exponential back-off, and a proof of what was sent (an archive copy searched by Message-ID).

Billing rules applied here:

* the server is configured only by the environment (``CDRBILL_SMTP_*``, see docs/DELIVERY.md); without
  ``CDRBILL_SMTP_HOST`` the Maildir outbox is used;
* the password (``CDRBILL_SMTP_PASSWORD`` or the file named by ``CDRBILL_SMTP_PASSWORD_FILE``) is never
  printed: not in ``repr``, errors, logs or the ledger (server replies are scrubbed of it too);
* 4xx replies, refused connections and time-outs are retried ``attempts`` times, waiting
  ``retry_delay_s × 2^(n−1)`` before the n-th retry; a 5xx refusal of the recipient or the message is final;
* an internationalised recipient (RFC 6531) is sent with SMTPUTF8 when the server offers it (headers in UTF-8);
  otherwise a recipient whose mailbox name is ASCII is sent to the domain's ASCII form (IDNA A-label, in the
  envelope and the To header), and one whose mailbox name is not ASCII cannot be sent at all: a permanent
  failure ``5.6.7`` (RFC 6531's "non-ASCII addresses not permitted"), so the document goes on paper;
* with ``CDRBILL_SMTP_ARCHIVE`` every message is also addressed (envelope only, no header) to an archive
  mailbox; ``CDRBILL_SMTP_ARCHIVE_MAILDIR`` names where that mailbox is stored, and a message found there by
  its Message-ID is proven sent.
"""

from __future__ import annotations

import base64
import copy
import mailbox
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from pipeline.mail import ascii_addr_spec, parse_recipient, sender_address
from pipeline.transports import MaildirTransport, SendFailure, maildir_message_ids

SECURITY_MODES = {"starttls": 587, "tls": 465, "none": 25}


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the carrier's SMTP relay (``password`` is kept out of ``repr``)."""

    host: str
    port: int
    security: str = "starttls"  # starttls | tls | none
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # trust this CA instead of the system's (a private relay)
    archive_address: str | None = None  # envelope copy of every message, for the proof of sending
    archive_maildir: Path | None = None  # where the archive mailbox is stored (searched by Message-ID)
    timeout_s: float = 30.0


def smtp_settings_from_env(env: Mapping[str, str]) -> SmtpSettings | None:
    """The SMTP settings from ``CDRBILL_SMTP_*`` variables, or None when no host is set (rule: Maildir then).

    A wrong value stops the run with the variable's name and the fix; the password's value is never shown.
    """
    host = env.get("CDRBILL_SMTP_HOST", "").strip()
    if not host:
        return None
    security = env.get("CDRBILL_SMTP_SECURITY", "starttls").strip().lower() or "starttls"
    if security not in SECURITY_MODES:
        raise ValueError(f"CDRBILL_SMTP_SECURITY={security!r}. Fix: one of {', '.join(SECURITY_MODES)}")
    port_text = env.get("CDRBILL_SMTP_PORT", "").strip()
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"CDRBILL_SMTP_PORT={port_text!r}. Fix: a port number 1–65535")
    port = int(port_text) if port_text else SECURITY_MODES[security]
    password = env.get("CDRBILL_SMTP_PASSWORD") or None
    password_file = env.get("CDRBILL_SMTP_PASSWORD_FILE", "").strip()
    if password_file:
        if password is not None:
            raise ValueError(
                "both CDRBILL_SMTP_PASSWORD and CDRBILL_SMTP_PASSWORD_FILE are set. Fix: set only one"
            )
        try:
            password = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ValueError(
                f"CDRBILL_SMTP_PASSWORD_FILE={password_file}: cannot be read ({error.strerror}). "
                "Fix: name a readable file holding the password"
            ) from None
    user = env.get("CDRBILL_SMTP_USER", "").strip() or None
    if password is not None and user is None:
        raise ValueError("an SMTP password is set without CDRBILL_SMTP_USER. Fix: set the user name too")
    archive = env.get("CDRBILL_SMTP_ARCHIVE", "").strip() or None
    if archive is not None and parse_recipient(archive) is None:
        raise ValueError(f"CDRBILL_SMTP_ARCHIVE={archive!r}. Fix: one plain address local@domain")
    archive_dir = env.get("CDRBILL_SMTP_ARCHIVE_MAILDIR", "").strip()
    timeout = env.get("CDRBILL_SMTP_TIMEOUT", "").strip()
    return SmtpSettings(
        host=host,
        port=port,
        security=security,
        user=user,
        password=password,
        ca_file=env.get("CDRBILL_SMTP_CA_FILE", "").strip() or None,
        archive_address=archive,
        archive_maildir=Path(archive_dir) if archive_dir else None,
        timeout_s=float(timeout) if timeout else 30.0,
    )


class SmtpTransport:
    """One SMTP connection, opened on the first message and reused; re-opened after a failure."""

    name = "smtp"

    def __init__(
        self,
        settings: SmtpSettings,
        sender: str,
        *,
        attempts: int = 3,
        retry_delay_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if attempts < 1:
            raise ValueError(f"smtp_attempts={attempts}. Fix: 1 or more")
        self.settings = settings
        self.sender = sender
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s
        self._sleep = sleep
        self._conn: smtplib.SMTP | None = None
        self._archive_index: dict[str, str] | None = None
        secret = settings.password
        self._secrets = (
            [secret, base64.b64encode(secret.encode()).decode()] if secret else []
        )  # as sent by AUTH LOGIN; AUTH PLAIN's blob contains the user too and is scrubbed whole below
        if secret and settings.user:
            self._secrets.append(base64.b64encode(f"\0{settings.user}\0{secret}".encode()).decode())

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpTransport({s.host}:{s.port}, {s.security}, user={s.user!r})"

    # ------------------------------------------------------------------ proof of sending

    def find_sent(self, message_id: str) -> bool | None:
        """True when the archive Maildir holds the Message-ID; None (unknown) without an archive or when
        it is not there yet: an SMTP server cannot be asked what it accepted."""
        folder = self.settings.archive_maildir
        if folder is None or not folder.is_dir():
            return None
        if self._archive_index is None or message_id not in self._archive_index:
            self._archive_index = maildir_message_ids(mailbox.Maildir(folder, factory=None, create=False))
        return True if message_id in self._archive_index else None

    # ------------------------------------------------------------------ sending

    def scrub(self, text: str) -> str:
        """``text`` with every form of the password replaced by ``***`` (rule: the secret never leaks)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=s.ca_file)
        conn: smtplib.SMTP
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=context)
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        try:
            conn.ehlo()
            if s.security == "starttls":
                conn.starttls(context=context)
                conn.ehlo()
            if s.user:
                conn.login(s.user, s.password or "")
        except BaseException:
            _quietly_close(conn)
            raise
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            _quietly_close(self._conn)
            self._conn = None

    def _for_server(self, message: EmailMessage, recipient: str) -> tuple[EmailMessage, str]:
        """The message and envelope recipient this server can take (rule: SMTPUTF8 when offered, else the
        domain's A-label; a non-ASCII mailbox name without SMTPUTF8 is a permanent failure 5.6.7)."""
        assert self._conn is not None
        if recipient.isascii() or self._conn.has_extn("smtputf8"):
            return message, recipient  # smtplib sends non-ASCII addresses with SMTPUTF8 and UTF-8 headers
        plain = ascii_addr_spec(recipient)
        where = f"{self.settings.host}:{self.settings.port}"
        if plain is None:
            raise SendFailure(
                f"{where}: 5.6.7 the server does not offer SMTPUTF8 and the mailbox name is not ASCII: "
                "cannot be sent by e-mail (paper instead)",
                permanent=True,
            )
        converted = copy.deepcopy(message)
        for header in ("To", "Cc"):
            if converted.get(header) is not None:
                addresses = [
                    Address(display_name=a.display_name, username=local, domain=domain)
                    for a in converted[header].addresses
                    for local, _, domain in [(ascii_addr_spec(a.addr_spec) or a.addr_spec).rpartition("@")]
                ]
                converted.replace_header(header, addresses)
        return converted, plain

    def _try_once(self, message: EmailMessage, recipient: str) -> None:
        """One attempt; raises SendFailure (``permanent``/``server_down`` set) on any failure."""
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            if self._conn is None:
                self._conn = self._connect()
            message, recipient = self._for_server(message, recipient)
            envelope_to = [recipient] + (
                [self.settings.archive_address] if self.settings.archive_address else []
            )
            refused = self._conn.send_message(message, from_addr=self.sender, to_addrs=envelope_to)
        except smtplib.SMTPAuthenticationError as error:
            self._drop()
            raise SendFailure(
                f"{where}: authentication refused ({error.smtp_code}). Fix: CDRBILL_SMTP_USER / password",
                config_error=True,
            ) from None
        except smtplib.SMTPNotSupportedError:
            self._drop()
            raise SendFailure(
                f"{where}: the server does not offer {self.settings.security.upper()} or AUTH. "
                "Fix: CDRBILL_SMTP_SECURITY",
                config_error=True,
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            self._drop()
            code, reply = error.recipients.get(recipient, next(iter(error.recipients.values())))
            raise self._refusal(code, reply, "recipient refused") from None
        except smtplib.SMTPSenderRefused as error:
            self._drop()
            failure = self._refusal(error.smtp_code, error.smtp_error, "sender refused")
            failure.server_down = failure.permanent  # a 5xx on our own sender stops every message
            failure.permanent = False
            raise failure from None
        except smtplib.SMTPResponseException as error:
            self._drop()
            raise self._refusal(error.smtp_code, error.smtp_error, "refused") from None
        except (smtplib.SMTPException, OSError) as error:  # disconnects, refused connections, TLS, time-outs
            self._drop()
            detail = self.scrub(str(error) or type(error).__name__)
            raise SendFailure(f"{where}: {type(error).__name__}: {detail}", server_down=True) from None
        if recipient in refused:
            code, reply = refused[recipient]
            raise self._refusal(code, reply, "recipient refused")

    def _refusal(self, code: int, reply: bytes | str, what: str) -> SendFailure:
        text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else str(reply)
        reason = self.scrub(f"{what}: {code} {' '.join(text.split())}")
        return SendFailure(reason, permanent=500 <= code < 600)

    def send(self, message: EmailMessage, recipient: str) -> int:
        """Send to ``recipient`` (and the archive), retrying transient failures with exponential back-off
        (rule: ``attempts`` tries, ``retry_delay_s × 2^(n−1)`` before retry n); returns the attempts used."""
        for attempt in range(1, self.attempts + 1):
            try:
                self._try_once(message, recipient)
                return attempt
            except SendFailure as failure:
                failure.attempts = attempt
                if failure.permanent or failure.config_error or attempt == self.attempts:
                    raise
            self._sleep(self.retry_delay_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """QUIT the connection if one is open."""
        self._drop()


def _quietly_close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


def transport_for(
    env: Mapping[str, str], outbox: Path, sender: str, *, attempts: int = 3, retry_delay_s: float = 2.0
) -> SmtpTransport | MaildirTransport:
    """The configured transport: SMTP when ``CDRBILL_SMTP_HOST`` is set, else the Maildir ``outbox``
    (rule: the embedded default needs no server)."""
    settings = smtp_settings_from_env(env)
    if settings is None:
        return MaildirTransport(outbox)
    return SmtpTransport(
        settings, sender_address(sender).addr_spec, attempts=attempts, retry_delay_s=retry_delay_s
    )
