"""E-mail behind one interface: `.eml` files in an outbox folder by default, SMTP when configured
(STARTTLS + login, e.g. a Gmail app password)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol, runtime_checkable

from dagster import ConfigurableResource
from pydantic import Field

log = logging.getLogger(__name__)


@runtime_checkable
class EmailSender(Protocol):
    def send(self, to: list[str], subject: str, body: str, *, reference: str) -> str: ...


def build_message(sender: str, to: list[str], subject: str, body: str, reference: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(idstring=reference.replace(" ", "-")[:60], domain="dispute-platform.local")
    message["X-Dispute-Reference"] = reference
    message.set_content(body)
    return message


class OutboxEmail(ConfigurableResource):
    """Writes each message as an .eml file: readable by any mail client, countable by tests."""

    outbox_dir: str = ".dispute_platform/outbox"
    sender: str = "dispute-platform@brightwave.example"

    def send(self, to: list[str], subject: str, body: str, *, reference: str) -> str:
        message = build_message(self.sender, to, subject, body, reference)
        folder = Path(self.outbox_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in reference)[:80]
        path = folder / f"{stamp}-{safe}.eml"
        path.write_bytes(bytes(message))
        return message["Message-ID"]


class SmtpEmail(ConfigurableResource):
    """SMTP with STARTTLS and login. The server's certificate is verified against the system's
    CAs (or `ca_file`); a password is never sent over a connection that is not encrypted."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = Field(default=None, description="An EnvVar; never logged.")
    sender: str
    starttls: bool = True
    verify_tls: bool = Field(default=True, description="Verify the server's certificate and host name. Keep on in production.")
    ca_file: str | None = Field(default=None, description="PEM file of CAs to trust instead of the system's (a private CA).")
    timeout_seconds: float = 20.0

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def send(self, to: list[str], subject: str, body: str, *, reference: str) -> str:
        message = build_message(self.sender, to, subject, body, reference)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            smtp.ehlo()
            if self.starttls:
                # Raises SMTPNotSupportedError when the server does not offer STARTTLS: the
                # login below must never go out in clear text.
                smtp.starttls(context=self.tls_context())
                smtp.ehlo()
            if self.username and self.password:
                if not self.starttls:
                    raise smtplib.SMTPException("refusing to send the SMTP password without STARTTLS")
                smtp.login(self.username, self.password)
            refused = smtp.send_message(message)
        if refused:
            # Some recipients were refused (all refused raises inside send_message): the others
            # got the message, so this is not retried, but it is not silent either. Addresses
            # are personal data and stay out of the log.
            log.warning("SMTP server refused %d of %d recipients for %s", len(refused), len(to), reference)
        return message["Message-ID"]
