"""Sending reports and checkpoints by email: SMTP with STARTTLS, never in the clear when TLS is asked for."""

from __future__ import annotations

import email.utils
import os
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage


class MailError(Exception):
    """The message could not be handed to the mail server."""


def send(smtp: dict, recipients: Sequence[str], subject: str, text: str,
         attachments: Sequence[tuple[str, bytes, str]] = (), *, timeout_s: float = 30.0,
         message_id: str | None = None) -> None:
    """Send one message to ``recipients`` through the ``reports.smtp`` settings.

    ``attachments`` are (file name, bytes, MIME type). With ``starttls`` set,
    a server that does not offer STARTTLS, or whose certificate does not
    verify, gets nothing.
    """
    if not smtp.get("host"):
        raise MailError("no mail server configured (reports.smtp.host)")
    if not recipients:
        raise MailError("no recipients")
    message = EmailMessage()
    message["From"] = smtp.get("sender") or "dojoguard@localhost"
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    # A message sent again (an alert retried after the server took it but before that was
    # recorded) keeps its Message-ID, so mail clients show it once.
    message["Message-ID"] = message_id or email.utils.make_msgid(domain="dojoguard")
    message.set_content(text)
    for name, data, mime in attachments:
        maintype, _, subtype = mime.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
    try:
        with smtplib.SMTP(smtp["host"], int(smtp.get("port") or 587), timeout=timeout_s) as client:
            client.ehlo()
            if smtp.get("starttls", True):
                if not client.has_extn("starttls"):
                    raise MailError(f"{smtp['host']} does not offer STARTTLS; refusing to send in the clear")
                context = ssl.create_default_context(cafile=smtp.get("ca_file") or None)
                client.starttls(context=context)
                client.ehlo()
            if smtp.get("username"):
                password = os.environ.get(smtp.get("password_env") or "", "")
                if not password:
                    raise MailError(f"the SMTP password is not set (environment variable "
                                    f"{smtp.get('password_env')})")
                client.login(smtp["username"], password)
            client.send_message(message)
    except MailError:
        raise
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise MailError(f"could not send through {smtp['host']}: {type(exc).__name__}: {exc}") from exc
