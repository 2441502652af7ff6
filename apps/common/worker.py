"""What gunicorn does differently for the apps: its worker, its access log, its error answers.

gunicorn.conf.py names these; each is tied to gunicorn's gthread worker as pinned in the apps'
requirements (gunicorn==27.0.1), see docs/apps.md "How the probes stay answerable":
- GuardedThreadWorker: slow clients never hold a thread. The event loop reads each request head
  and hands only complete heads to the thread pool; a head not complete after
  GUNICORN_HEADER_TIMEOUT seconds is answered 408 and dropped; a response write that makes no
  progress for GUNICORN_SEND_TIMEOUT seconds drops the connection. /healthz and /readyz are
  served by the event loop itself, so they answer while every pool thread is busy.
- JsonAccessLogger: one JSON object per line, built with json.dumps (a JSON access_log_format
  string would only escape '"', not backslashes or control characters).
- write_plain_error: gunicorn's own answers (malformed requests) as text/plain + nosniff.
"""

import errno
import json
import os
import re
import selectors
import socket
import struct
import sys
import time
from concurrent.futures import Future
from functools import partial

import gunicorn.util
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import TConn, ThreadWorker
from settings import env_int


class JsonAccessLogger(Logger):
    """Gunicorn's logger, with access log lines as JSON objects (one per line).

    To stdout (the default) a line is one os.write: no logging-module work per request, and
    lines from threads and workers never mix: a pipe write of up to 4 KiB is atomic, and the
    free-text fields are cut so that a line stays below that even if every character had to
    be escaped (json.dumps writes non-ASCII as \\uXXXX; gunicorn refuses control characters).
    """

    def setup(self, cfg):
        super().setup(cfg)
        plain_stdout = cfg.accesslog == "-" and not (
            cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json or cfg.syslog
        )
        self._access_fd = sys.stdout.fileno() if plain_stdout else None

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        status = resp.status
        request_id = environ.get("HTTP_X_REQUEST_ID")
        user_agent = environ.get("HTTP_USER_AGENT")
        line = json.dumps(
            {
                "time": _utc_now(),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "method": environ.get("REQUEST_METHOD"),
                "target": environ.get("RAW_URI", "")[:400],
                "status": int(status[:3]) if isinstance(status, str) else status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "x_request_id": request_id[:100] if request_id else request_id,
                "user_agent": user_agent[:100] if user_agent else user_agent,
            }
        )
        if self._access_fd is None:
            # A message without arguments is never %-formatted by logging: the JSON stays intact.
            self.access_log.info(line)
        else:
            os.write(self._access_fd, line.encode() + b"\n")


def write_plain_error(sock, status_int, reason, mesg):
    """gunicorn's own answers (a malformed request, an app crash) as text/plain + nosniff.

    gunicorn writes them as text/html through gunicorn.util.write_error; replacing that one
    function (below) keeps the apps' rule for every response, whoever writes it.
    """
    body = (f"{reason}: {mesg}" if mesg else reason).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = write_plain_error

_second = (0, "")  # (a second since the epoch, its ISO 8601 form): formatted once a second


def _utc_now():
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-25T15:16:27.042Z."""
    global _second
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{int((now - second) * 1000):03d}Z"


HEADER_TIMEOUT = env_int("GUNICORN_HEADER_TIMEOUT", 10, 1, 3600)
SEND_TIMEOUT = env_int("GUNICORN_SEND_TIMEOUT", 30, 1, 3600)
MAX_HEAD_BYTES = 65536  # a longer request head is answered 431
_PROBE = re.compile(rb"(?:\r?\n)*(?:GET|HEAD) /(?:healthz|readyz)(?:\?[^ ]*)? HTTP/1\.[01]\r?\n")
_HAS_BODY = re.compile(rb"\n(?:content-length|transfer-encoding)[ \t]*:", re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _plain(status, text):
    body = text.encode()
    return (
        f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


_TIMED_OUT = _plain(
    "408 Request Timeout",
    f"Request Timeout: the request head did not arrive within {HEADER_TIMEOUT} s "
    "(GUNICORN_HEADER_TIMEOUT)",
)
_TOO_LARGE = _plain(
    "431 Request Header Fields Too Large",
    f"Request Header Fields Too Large: more than {MAX_HEAD_BYTES} bytes",
)


class GuardedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, with request heads read by the event loop (main thread).

    gthread hands a connection to a pool thread as soon as it has a byte to read, and the
    thread then blocks until the whole request head is there: a few dozen clients that send
    half a request take every thread. Here the event loop buffers the head (non-blocking) and
    submits the connection only once the head is complete; heads still incomplete after
    GUNICORN_HEADER_TIMEOUT are answered 408 and closed (checked about once a second). The
    probes, cheap and answered by the app from memory, run in the event loop itself, so that
    /healthz answers while every pool thread is busy (e.g. with /delay or a slow upstream).
    Backstops on every client socket: SO_RCVTIMEO (a blocked read in a pool thread fails after
    GUNICORN_HEADER_TIMEOUT) and SO_SNDTIMEO (a write that makes no progress for
    GUNICORN_SEND_TIMEOUT fails).
    """

    def accept(self, listener):
        try:
            sock, client = listener.accept()
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(HEADER_TIMEOUT))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(SEND_TIMEOUT))
        conn = TConn(self.cfg, sock, client, listener.getsockname())  # non-blocking
        conn.head = b""
        conn.timeout = time.monotonic() + HEADER_TIMEOUT
        self._on_head_data(conn, registered=False)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection has its next request coming: read its head here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        conn.head = b""
        conn.timeout = time.monotonic() + HEADER_TIMEOUT
        self._on_head_data(conn, registered=False)

    def _on_head_data(self, conn, registered=True, _fileobj=None):
        try:
            data = conn.sock.recv(MAX_HEAD_BYTES)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            data = b""  # reset by the peer
        if data is not None:
            conn.head += data
        complete = data and _HEAD_END.search(conn.head.lstrip(b"\r\n"))
        if data == b"" or complete or len(conn.head) > MAX_HEAD_BYTES:
            if registered:
                self.poller.unregister(conn.sock)
                self.pending_conns.remove(conn)
            if complete:
                self._dispatch(conn)
            else:
                self._drop(conn, _TOO_LARGE if data else b"")
        elif not registered:
            self.pending_conns.append(conn)  # same timeout for all: the deque stays sorted
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self._on_head_data, conn, True)
            )

    def _dispatch(self, conn):
        head, conn.head = conn.head, b""
        conn.init()  # the HTTP/1.1 parser (plain HTTP: nothing blocks here)
        conn.parser.unreader.unread(head)
        if _PROBE.match(head) and not _HAS_BODY.search(head):
            done = Future()
            done.set_result(self.handle(conn))  # the app answers a probe from memory
            self.finish_request(conn, done)
        else:
            self.enqueue_req(conn)

    def _drop(self, conn, answer):
        self.nr_conns -= 1
        if answer:
            try:
                conn.sock.send(answer)
            except OSError:
                pass
        conn.close()

    def murder_pending(self):
        """Close connections whose request head is overdue (the event loop runs this ~1/s)."""
        now = time.monotonic()
        while self.pending_conns and self.pending_conns[0].timeout <= now:
            conn = self.pending_conns.popleft()
            try:
                self.poller.unregister(conn.sock)
            except (OSError, KeyError, ValueError):
                pass
            self._drop(conn, _TIMED_OUT)


def _timeval(seconds):
    return struct.pack("ll", seconds, 0)
