"""A real SMTP server on loopback for the mail tests (aiosmtpd): it keeps every message it accepts, can refuse
recipients with scripted replies, require STARTTLS, implicit TLS or AUTH, and deliver the envelope copies for
an archive address into a Maildir (as the carrier's MTA would)."""

from __future__ import annotations

import email
import email.policy
import mailbox
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "billing", "s3cr3t-P@ss-7741"
ARCHIVE = "archive@cdrbill.invalid"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)  # e.g. SMTPUTF8, BODY=8BITMIME

    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class Handler:
    """aiosmtpd handler: ``script`` maps a recipient to the replies its next RCPT commands get."""

    received: list[Received] = field(default_factory=list)
    script: dict[str, list[str]] = field(default_factory=dict)
    archive_maildir: Path | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        replies = self.script.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = bytes(envelope.original_content or envelope.content)
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), data, list(envelope.mail_options))
        )
        if self.archive_maildir is not None and ARCHIVE in envelope.rcpt_tos:
            mailbox.Maildir(self.archive_maildir, create=True).add(data)
        return "250 2.0.0 accepted"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MailServer:
    handler: Handler
    port: int
    security: str
    ca_file: Path | None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def env(self, **extra: str) -> dict[str, str]:
        """The ``CDRBILL_SMTP_*`` variables that point cdrbill at this server."""
        values = {
            "CDRBILL_SMTP_HOST": "127.0.0.1",
            "CDRBILL_SMTP_PORT": str(self.port),
            "CDRBILL_SMTP_SECURITY": self.security,
            "CDRBILL_SMTP_TIMEOUT": "10",
        }
        if self.ca_file is not None:
            values["CDRBILL_SMTP_CA_FILE"] = str(self.ca_file)
        return {**values, **extra}


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost made with the openssl command (skips the test without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
    return cert, key


def start(
    folder: Path, security: str = "none", auth: bool = False, smtputf8: bool = False
) -> Iterator[MailServer]:
    """Run a server until the generator is closed: ``security`` none | starttls | tls; ``auth`` requires login;
    ``smtputf8`` offers SMTPUTF8 (RFC 6531)."""
    handler = Handler()
    kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    ca_file = None
    if security != "none":
        cert, key = self_signed(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        ca_file = cert
        if security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        else:
            kwargs.update(ssl_context=context)
    if auth:
        kwargs.update(
            authenticator=_authenticate, auth_required=True, auth_require_tls=security == "starttls"
        )  # implicit TLS: aiosmtpd cannot tell, the socket is TLS anyway
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield MailServer(handler, port, security, ca_file)
    finally:
        controller.stop()
