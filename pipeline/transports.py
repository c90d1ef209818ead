"""Where an e-mail goes: the embedded Maildir outbox (no SMTP server configured) or an SMTP server
(pipeline/smtp.py). Both answer the one question exactly-once delivery needs after a crash: "was the message
with this Message-ID already handed over?"

Billing rules applied here:

* a Maildir outbox is its own proof: a message found there by its ``Message-ID`` was delivered; a message to an
  internationalised address is stored as UTF-8 (RFC 6532), as an SMTPUTF8 server would receive it;
* a failure says whether it is worth retrying (transient: 4xx, connection refused, time-out) or final for this
  recipient (permanent: 5xx refusal), and whether the whole server is unusable (then the rest of the run is not
  tried against it).
"""

from __future__ import annotations

import email.policy
import mailbox
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any, Protocol

from pipeline.durable import fsync_path
from pipeline.mail import has_international_address


class SendFailure(Exception):
    """A message was not handed over. ``permanent``: the server refused it for good (5xx for this recipient);
    ``server_down``: no message can go through this server now (connection, TLS or authentication);
    ``config_error``: retrying cannot help until a setting is fixed (authentication, security mode)."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        server_down: bool = False,
        config_error: bool = False,
        attempts: int = 1,
    ):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.server_down = server_down or config_error
        self.config_error = config_error
        self.attempts = attempts


class Transport(Protocol):
    """What delivery needs from a transport."""

    name: str

    def find_sent(self, message_id: str) -> bool | None:
        """True when the message is proven handed over, False when proven not, None when unknown."""
        ...

    def send(self, message: EmailMessage, recipient: str) -> int:
        """Hand the message over for ``recipient``; returns the attempts used; raises ``SendFailure``."""
        ...

    def close(self) -> None: ...


def read_message_id(fh: IO[bytes]) -> str | None:
    """Message-ID from a stored message's header block (reads the headers only)."""
    current: str | None = None
    for raw in fh:
        line = raw.decode("ascii", errors="replace")
        if line in ("\n", "\r\n"):
            break
        if line[:1] in (" ", "\t"):
            if current is not None:
                current += line.strip()
            continue
        if current is not None:
            return current
        name, _, value = line.partition(":")
        if name.strip().lower() == "message-id":
            current = value.strip()
    return current


def maildir_message_ids(box: mailbox.Maildir) -> dict[str, str]:
    """Message-ID → Maildir key of every message in ``box`` (new and cur)."""
    index: dict[str, str] = {}
    for key in box.iterkeys():
        fh: Any = box.get_file(key)
        try:
            mid = read_message_id(fh)
        finally:
            fh.close()
        if mid:
            index[mid] = key
    return index


@dataclass
class MaildirTransport:
    """The embedded default: each message becomes one file of the Maildir ``outbox`` (LF line ends)."""

    outbox: Path
    name: str = "maildir"

    def __post_init__(self) -> None:
        self._box: mailbox.Maildir | None = None
        self._index: dict[str, str] | None = None

    def _open(self) -> tuple[mailbox.Maildir, dict[str, str]]:
        if self._box is None or self._index is None:
            self._box = mailbox.Maildir(self.outbox, factory=None, create=True)
            self._index = maildir_message_ids(self._box)
        return self._box, self._index

    def find_sent(self, message_id: str) -> bool | None:
        """A Maildir is complete proof: True when the Message-ID is in the outbox, else False."""
        return message_id in self._open()[1]

    def send(self, message: EmailMessage, recipient: str) -> int:
        """Write the message into the outbox, fsynced (a local write: one attempt)."""
        box, index = self._open()
        policy = email.policy.SMTPUTF8 if has_international_address(message) else email.policy.SMTP
        key = box.add(message.as_bytes(policy=policy.clone(linesep="\n")))
        new_file = Path(self.outbox) / "new" / key
        if new_file.exists():
            fsync_path(new_file)
            fsync_path(Path(self.outbox) / "new")
        index[str(message["Message-ID"])] = key
        return 1

    def close(self) -> None:
        self._box = None
        self._index = None
