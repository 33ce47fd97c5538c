"""SmtpEmail against a real SMTP server (aiosmtpd) started in the test: STARTTLS with a
self-signed certificate made here, AUTH required (PLAIN or LOGIN), the message as received."""

from __future__ import annotations

import datetime as dt
import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dispute_platform.resources.email import EmailSender, SmtpEmail

USER, PASSWORD = "reviewer-bot@brightwave.example", "app-password-1234"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.auth_attempts: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "content": envelope.original_content or envelope.content,
                "tls": session.ssl is not None,
                "login": session.auth_data.login.decode() if session.auth_data else None,
            }
        )
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.auth_attempts.append((mechanism, auth_data.login.decode()))
        ok = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture(params=["PLAIN", "LOGIN"])
def smtp_server(request, tls_files) -> Iterator[tuple[Inbox, int, str]]:
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    offered = request.param
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=inbox.authenticate,
        auth_exclude_mechanism=["LOGIN" if offered == "PLAIN" else "PLAIN"],
    )
    controller.start()
    yield inbox, controller.port, offered
    controller.stop()


def mailer(port: int, **overrides) -> SmtpEmail:
    config = {"host": "127.0.0.1", "port": port, "username": USER, "password": PASSWORD, "sender": USER, "timeout_seconds": 5}
    return SmtpEmail(**{**config, **overrides})


def test_sends_over_starttls_with_auth(smtp_server, tls_files) -> None:
    inbox, port, mechanism = smtp_server
    email = mailer(port, ca_file=str(tls_files[0]))
    assert isinstance(email, EmailSender)
    message_id = email.send(
        ["approvers@brightwave.example", "lead@brightwave.example"],
        "Review CASE-1001",
        "Please review.\n",
        reference="review CASE-1001",
    )

    (received,) = inbox.messages
    assert received["tls"] is True and received["login"] == USER
    assert inbox.auth_attempts == [(mechanism, USER)]
    assert received["mail_from"] == USER
    assert received["rcpt_tos"] == ["approvers@brightwave.example", "lead@brightwave.example"]
    parsed = message_from_bytes(received["content"], policy=default_policy)
    assert parsed["From"] == USER and parsed["Subject"] == "Review CASE-1001"
    assert parsed["To"] == "approvers@brightwave.example, lead@brightwave.example"
    assert parsed["Message-ID"] == message_id and message_id.endswith("@dispute-platform.local>")
    assert parsed["X-Dispute-Reference"] == "review CASE-1001"
    assert parsed.get_content().replace("\r\n", "\n") == "Please review.\n"


def test_unknown_certificate_is_refused_by_default(smtp_server) -> None:
    inbox, port, _ = smtp_server
    with pytest.raises(ssl.SSLCertVerificationError):
        mailer(port).send(["a@brightwave.example"], "s", "b", reference="r")
    assert inbox.messages == [] and inbox.auth_attempts == []  # the password never left


def test_verification_can_be_switched_off_explicitly(smtp_server) -> None:
    inbox, port, _ = smtp_server
    mailer(port, verify_tls=False).send(["a@brightwave.example"], "s", "b", reference="r")
    assert len(inbox.messages) == 1


def test_wrong_password_is_an_authentication_error(smtp_server, tls_files) -> None:
    inbox, port, _ = smtp_server
    with pytest.raises(smtplib.SMTPAuthenticationError):
        mailer(port, password="wrong", ca_file=str(tls_files[0])).send(["a@brightwave.example"], "s", "b", reference="r")
    assert inbox.messages == []


def test_password_is_never_sent_without_starttls(smtp_server) -> None:
    inbox, port, _ = smtp_server
    with pytest.raises(smtplib.SMTPException, match="without STARTTLS"):
        mailer(port, starttls=False).send(["a@brightwave.example"], "s", "b", reference="r")
    assert inbox.auth_attempts == []
