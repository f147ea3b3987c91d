"""A webhook receiver for Alertmanager on loopback: each notification is appended to a JSON-lines file.

`make up` runs it so the alerts of a local stack land somewhere a person can read
(`$READMIT_HOME/alerts.jsonl`); the alerting stack test uses it as the far end of the chain. With a login
(Alertmanager's, `http_config.basic_auth` in alertmanager.yml) a notification without it is refused (401).
    python -m observability.alert_sink --port 9096 --out alerts.jsonl --user alertmanager --password-file FILE
"""
from __future__ import annotations

import argparse
import base64
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 1_000_000


def make_server(port: int, out: Path, host: str = "127.0.0.1",
                login: tuple[str, str] | None = None) -> ThreadingHTTPServer:
    """The sink on `host:port`; with `login` (user, password) every POST must carry it as basic auth."""
    lock = threading.Lock()
    expected = b"Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()) if login else None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            if expected is not None and not hmac.compare_digest(
                    self.headers.get("Authorization", "").encode("latin-1", errors="replace"), expected):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="alert sink"')
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            try:
                notification = json.loads(self.rfile.read(length))
            except ValueError:
                self.send_error(400, "body is not JSON")
                return
            with lock, out.open("a") as handle:
                handle.write(json.dumps(notification) + "\n")
            self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - health check
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args) -> None:
            pass

    out.parent.mkdir(parents=True, exist_ok=True)
    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9096)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--user", help="the login a notification must carry (with --password-file)")
    parser.add_argument("--password-file", type=Path, help="file holding that login's password (never an argument)")
    args = parser.parse_args()
    login = (args.user, args.password_file.read_text().strip()) if args.user and args.password_file else None
    make_server(args.port, args.out, login=login).serve_forever()


if __name__ == "__main__":
    main()
