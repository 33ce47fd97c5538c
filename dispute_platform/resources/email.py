"""E-mail behind one interface: `.eml` files in an outbox folder by default, SMTP when configured
(STARTTLS + login, e.g. a Gmail app password)."""

from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol, runtime_checkable

from dagster import ConfigurableResource
from pydantic import Field


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
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = Field(default=None, description="An EnvVar; never logged.")
    sender: str
    starttls: bool = True
    timeout_seconds: float = 20.0

    def send(self, to: list[str], subject: str, body: str, *, reference: str) -> str:
        message = build_message(self.sender, to, subject, body, reference)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username and self.password:
                smtp.login(self.username, self.password)
            smtp.send_message(message)
        return message["Message-ID"]
