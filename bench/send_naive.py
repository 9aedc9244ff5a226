"""Send benchmark baselines: smtp-sink/smtp-source (the transport limit), the naive send loop; dkimpy checks.

The naive loop is what one would write first: for each recipient, render the campaign's
Jinja2 templates, build an `email.message.EmailMessage` (mailflow.tasks.compose.message.build_message), sign
it with dkimpy and send it with smtplib over one persistent connection, all in one process.
It renders the same templates with the same signed per-recipient URLs and adds the same
list headers as mailflow's Composer, so both send the same content.
"""

from __future__ import annotations

import getpass
import os
import shutil
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from typing import Any

import dkim

from bench import MissingTool
from mailflow.tasks.compose.message import build_message

CONNECTIONS = 8  # the default pool's connections (mailflow/settings.py), and smtp-source's sessions

# The header fields mailflow's DkimSigner signs (mailflow.tasks.compose.dkim.DEFAULT_HEADERS), for dkimpy
SIGNED = [b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post"]


def postfix_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not path:
        raise MissingTool(f"{name} not found: `apt-get install postfix` (it ships smtp-sink and smtp-source)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(port: int) -> subprocess.Popen:
    """smtp-sink on 127.0.0.1:port, once it answers with its 220 greeting."""
    cmd = [postfix_tool("smtp-sink")]
    if os.geteuid() == 0:
        cmd += ["-u", getpass.getuser()]  # required when run as root
    cmd += [f"127.0.0.1:{port}", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"smtp-sink exited {proc.returncode}: {proc.stderr.read().decode().strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"220"):
                    return proc
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"smtp-sink did not answer on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def source_rate(port: int, n: int, size: int, sender: str, helo: str) -> float:
    """msgs/s of smtp-source: n messages of `size` bytes over CONNECTIONS persistent sessions (-d)."""
    cmd = [postfix_tool("smtp-source"), "-d", "-s", str(CONNECTIONS), "-m", str(n), "-l", str(size),
           "-f", sender, "-t", "bench@example.com", "-M", helo, f"127.0.0.1:{port}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source exited {done.returncode}: {done.stderr.decode().strip()}")
    return n / elapsed


def rsa_key_pem(bits: int = 2048) -> str:
    """A fresh unencrypted PKCS#8 RSA key, as a DKIM signing key in settings."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def naive_send(composer, rows: Iterable[Mapping[str, Any]], host: str, port: int, helo: str,
               selector: str, domain: str, pem: str) -> tuple[int, float, int]:
    """(messages sent, seconds, total message bytes) of the naive loop over `rows`.

    `composer` (mailflow.tasks.compose.compose.Composer) lends its compiled CampaignTemplates and the signed
    per-recipient URLs; everything else is the standard library and dkimpy.
    """
    spec, templates, bounce_domain = composer.spec, composer.templates, composer.bounce_domain
    privkey = pem.encode("ascii")
    sent = size = 0
    start = time.perf_counter()
    with smtplib.SMTP(host, port, local_hostname=helo, timeout=30) as smtp:
        for row in rows:
            helpers, send_token = composer.helpers(row["subscriber_id"])
            rendered = templates.render(row, helpers)
            to_name = " ".join(x for x in (row.get("first_name"), row.get("last_name")) if x) or None
            message = build_message(
                from_addr=spec.from_addr, to_email=row["email"], to_name=to_name, subject=rendered.subject,
                html=rendered.html, text=rendered.text,
                extra_headers={
                    "List-Unsubscribe": f"<{helpers.unsubscribe_url}>, "
                                        f"<mailto:unsubscribe+{send_token}@{bounce_domain}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                    "Feedback-ID": composer.feedback_id,
                    "X-Mailflow-Send": send_token,
                },
            )
            signature = dkim.sign(message, selector.encode(), domain.encode(), privkey,
                                  canonicalize=(b"relaxed", b"relaxed"), include_headers=SIGNED)
            data = signature + message
            smtp.sendmail(f"bounce+{send_token}@{bounce_domain}", [row["email"]], data)
            sent += 1
            size += len(data)
    return sent, time.perf_counter() - start, size


def dkim_verified(messages: Iterable[bytes], selector: str, domain: str, txt_record: str) -> tuple[int, int]:
    """(verified, checked): dkimpy's verdict on each message, the key's TXT record served from memory."""
    owner, record = f"{selector}._domainkey.{domain}", txt_record.encode("ascii")

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return record if name.rstrip(".") == owner else None

    results = [dkim.verify(message, dnsfunc=dnsfunc) for message in messages]
    return sum(results), len(results)
