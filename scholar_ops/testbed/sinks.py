"""Local notification receivers: a webhook endpoint and an SMTP sink, as one process.

    python -m scholar_ops.testbed.sinks --dir DIR [--host 127.0.0.1] [--http-port 8025] [--smtp-port 2525]

Stands in, on one machine, for what AlertManager would notify in production (a chat
webhook, a mail relay): every POST to the HTTP port (any path: AlertManager's webhook
receiver, a Slack-style incoming webhook) is appended to ``DIR/webhook.jsonl``; every
mail delivered to the SMTP port (plain SMTP, no TLS, no authentication) to
``DIR/email.jsonl``. ``GET /`` is a small HTML page listing what arrived, newest first;
``GET /api/notifications`` the same as JSON. The files are the record: a restarted
sink shows what arrived before. SIGTERM or SIGINT stop it.

Each line of the files is one JSON object: ``{"kind": "webhook", "at": <unix time>,
"path": "/alertmanager", "body": <JSON or text>}`` or ``{"kind": "email", "at": ...,
"from": ..., "to": [...], "subject": ..., "text": ...}``.

Plain Python (asyncio, http.server), no Prefect import and no third-party SMTP library.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WEBHOOK_FILE = "webhook.jsonl"
EMAIL_FILE = "email.jsonl"
DEFAULT_HTTP_PORT = 8025
DEFAULT_SMTP_PORT = 2525
_MAX_BODY = 4 << 20


class NotificationLog:
    """Appends notifications to the JSONL files of a directory, and reads them back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, filename: str, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock, (self.directory / filename).open("a", encoding="utf-8") as f:
            f.write(line)

    def read(self) -> list[dict[str, Any]]:
        """Every notification, oldest first."""
        return read_notifications(self.directory)


def read_notifications(directory: Path) -> list[dict[str, Any]]:
    """The notifications recorded in ``directory`` (both files), oldest first."""
    out: list[dict[str, Any]] = []
    for name in (WEBHOOK_FILE, EMAIL_FILE):
        try:
            lines = (directory / name).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash
    return sorted(out, key=lambda r: float(r.get("at", 0)))


def message_text(m: Message) -> str:
    """Every text part of a mail, decoded."""
    parts = []
    for part in m.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(parts)


def email_record(sender: str, recipients: list[str], data: bytes) -> dict[str, Any]:
    m = message_from_bytes(data, policy=policy.default)
    return {
        "kind": "email",
        "at": time.time(),
        "from": sender,
        "to": recipients,
        "subject": str(m["Subject"] or ""),
        "text": message_text(m),
    }


# -- the webhook endpoint and the page ----------------------------------------------------


def _summary(record: dict[str, Any]) -> str:
    """One line per notification on the page: alert names and states, or the subject."""
    if record.get("kind") == "email":
        return str(record.get("subject", ""))
    body = record.get("body")
    if isinstance(body, dict) and isinstance(body.get("alerts"), list):
        names = [
            f"{a.get('labels', {}).get('alertname', '?')} ({a.get('status', '?')})"
            + (
                f": {a['annotations']['summary']}"
                if a.get("annotations", {}).get("summary")
                else ""
            )
            for a in body["alerts"]
            if isinstance(a, dict)
        ]
        return f"{body.get('status', '')}: " + "; ".join(names)
    if isinstance(body, dict) and isinstance(body.get("attachments"), list):  # Slack
        return "; ".join(
            f"{a.get('title', '')}: {str(a.get('text', ''))[:200]}"
            for a in body["attachments"]
            if isinstance(a, dict)
        )
    if isinstance(body, dict) and "text" in body:
        return str(body["text"])[:300]
    return json.dumps(body, ensure_ascii=False)[:300]


def render_page(records: list[dict[str, Any]]) -> str:
    rows = []
    for r in reversed(records):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(r.get("at", 0))))
        where = r.get("path", "") if r.get("kind") == "webhook" else ", ".join(r.get("to", []))
        detail = r.get("text") if r.get("kind") == "email" else r.get("body")
        detail_text = detail if isinstance(detail, str) else json.dumps(detail, indent=1)
        rows.append(
            "<tr>"
            f"<td>{html.escape(when)}</td><td>{html.escape(str(r.get('kind', '')))}</td>"
            f"<td>{html.escape(str(where))}</td><td>{html.escape(_summary(r))}"
            f"<details><summary>full</summary><pre>{html.escape(str(detail_text))}</pre>"
            "</details></td></tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="4">nothing yet</td></tr>'
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>scholar-ops notifications"
        "</title><meta http-equiv='refresh' content='15'><style>body{font-family:sans-serif}"
        "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px;"
        "vertical-align:top;text-align:left}pre{white-space:pre-wrap;max-width:100ch}</style>"
        "</head><body><h1>Notifications received</h1>"
        f"<p>{len(records)} notification(s): webhooks (AlertManager) and emails (SMTP sink), "
        "newest first. This page refreshes every 15 s.</p>"
        "<table><tr><th>received</th><th>kind</th><th>to</th><th>what</th></tr>"
        f"{body}</table></body></html>"
    )


def make_http_server(log: NotificationLog, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            log.append(
                WEBHOOK_FILE,
                {"kind": "webhook", "at": time.time(), "path": self.path, "body": body},
            )
            self._send(200, "application/json", b"{}")

        def do_GET(self) -> None:
            if self.path.startswith("/api/notifications"):
                self._send(200, "application/json", json.dumps(log.read()).encode())
            elif self.path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", render_page(log.read()).encode())
            elif self.path == "/-/healthy":
                self._send(200, "text/plain", b"ok\n")
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, ctype: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


# -- the SMTP sink ------------------------------------------------------------------------


class _SmtpSession:
    """RFC 5321 enough for AlertManager and smtplib: HELO/EHLO, MAIL, RCPT, DATA, RSET,
    NOOP, QUIT; no TLS, no AUTH."""

    def __init__(self, log: NotificationLog, hostname: str) -> None:
        self.log = log
        self.hostname = hostname
        self.sender = ""
        self.recipients: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        reply(f"220 {self.hostname} scholar-ops SMTP sink")
        try:
            while True:
                await writer.drain()
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    reply(f"250-{self.hostname}")
                    reply("250-8BITMIME")
                    reply("250 SMTPUTF8")
                elif verb == "HELO":
                    reply(f"250 {self.hostname}")
                elif verb == "MAIL":
                    self.sender, self.recipients = _address(arg), []
                    reply("250 OK")
                elif verb == "RCPT":
                    self.recipients.append(_address(arg))
                    reply("250 OK")
                elif verb == "DATA":
                    if not self.recipients:
                        reply("503 RCPT first")
                        continue
                    reply("354 end with <CRLF>.<CRLF>")
                    await writer.drain()
                    data = await _read_data(reader)
                    self.log.append(EMAIL_FILE, email_record(self.sender, self.recipients, data))
                    self.sender, self.recipients = "", []
                    reply("250 OK: queued")
                elif verb == "RSET":
                    self.sender, self.recipients = "", []
                    reply("250 OK")
                elif verb == "NOOP":
                    reply("250 OK")
                elif verb == "QUIT":
                    reply("221 bye")
                    await writer.drain()
                    return
                else:
                    reply("502 command not implemented")
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


def _address(arg: str) -> str:
    """The address of ``FROM:<a@b> SIZE=12`` / ``TO:<a@b>``."""
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1 : rest.find(">")] if ">" in rest else rest[1:]
    return rest.split(" ")[0]


async def _read_data(reader: asyncio.StreamReader) -> bytes:
    lines = []
    size = 0
    while True:
        raw = await reader.readline()
        if not raw or raw in (b".\r\n", b".\n"):
            break
        if raw.startswith(b".."):
            raw = raw[1:]  # dot-stuffing
        if raw.endswith(b"\r\n"):
            raw = raw[:-2] + b"\n"  # kept with plain newlines
        size += len(raw)
        if size <= _MAX_BODY:
            lines.append(raw)
    return b"".join(lines)


async def _serve_smtp(log: NotificationLog, host: str, port: int, stop: asyncio.Event) -> None:
    server = await asyncio.start_server(
        lambda r, w: _SmtpSession(log, host).handle(r, w), host, port
    )
    async with server:
        await stop.wait()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m scholar_ops.testbed.sinks",
        description="webhook receiver and SMTP sink writing what arrives to DIR/*.jsonl",
    )
    ap.add_argument("--dir", type=Path, required=True, help="where the .jsonl files go")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    ap.add_argument("--smtp-port", type=int, default=DEFAULT_SMTP_PORT)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    log = NotificationLog(args.dir.resolve())
    try:
        http = make_http_server(log, args.host, args.http_port)
    except OSError as e:
        print(
            f"sinks: cannot listen on {args.host}:{args.http_port}: {e.strerror}", file=sys.stderr
        )
        return 2
    threading.Thread(target=http.serve_forever, daemon=True).start()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await _serve_smtp(log, args.host, args.smtp_port, stop)

    try:
        print(
            f"sinks: webhooks on http://{args.host}:{args.http_port}/, SMTP on "
            f"{args.host}:{args.smtp_port}, recorded in {log.directory}",
            flush=True,
        )
        asyncio.run(run())
    except OSError as e:
        print(
            f"sinks: cannot listen on {args.host}:{args.smtp_port}: {e.strerror}", file=sys.stderr
        )
        return 2
    finally:
        http.shutdown()
        http.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
