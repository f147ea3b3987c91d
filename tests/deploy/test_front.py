"""The authenticating fronts of compose (Dagster) and k8s (Streamlit) run for real: Debian's nginx on loopback
with the configs from git, in front of a trivial backend that records what reaches it. Without a login: 401;
with it: the backend answers; a cross-site request (a GraphQL mutation by GET or form POST, a foreign Origin on
a POST or a websocket upgrade) gets a 4xx and never reaches the backend."""
import base64
import crypt
import http.client
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "operator", "front-test-password"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # Debian's nginx-light (make system-packages)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Backend(http.server.ThreadingHTTPServer):
    """Answers 200 to anything and keeps (method, path, Authorization) of every request that reached it."""

    def __init__(self):
        self.seen: list[tuple[str, str, str | None]] = []
        self.users: list[str | None] = []  # the X-Readmit-User each request carried to the backend
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                backend.seen.append((self.command, self.path, self.headers.get("Authorization")))
                backend.users.append(self.headers.get("X-Readmit-User"))
                body = b'{"data": {"version": "test"}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = _any

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="module")
def fronts(tmp_path_factory):
    """nginx serving compose's Dagster front and k8s's UI front, each before its own backend."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: `make system-packages` installs it (Debian nginx-light)")
    root = tmp_path_factory.mktemp("front")
    (root / "htpasswd").write_text(f"{USER}:{crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    backends = {name: _Backend() for name in ("dagster", "ui")}
    for backend in backends.values():
        threading.Thread(target=backend.serve_forever, daemon=True).start()
    ports = {name: _free_port() for name in backends}
    replacements = {
        "dagster": (REPO / "compose/front/compose-dagster.conf", {
            "server dagster-webserver:3070;": f"server 127.0.0.1:{backends['dagster'].server_address[1]};",
            "listen 3070;": f"listen 127.0.0.1:{ports['dagster']};",
            "/run/secrets/front-htpasswd": str(root / "htpasswd")}),
        "ui": (REPO / "k8s/base/front/streamlit.conf", {
            "server readmit-ui:8501;": f"server 127.0.0.1:{backends['ui'].server_address[1]};",
            "listen 8080;": f"listen 127.0.0.1:{ports['ui']};",
            "/etc/nginx/auth/htpasswd": str(root / "htpasswd")}),
    }
    for name, (source, changes) in replacements.items():
        text = source.read_text()
        for old, new in changes.items():
            assert text.count(old) == 1, (source, old)
            text = text.replace(old, new)
        (root / f"{name}.conf").write_text(text)
    user = "user root;\n" if os.geteuid() == 0 else ""  # root's workers would otherwise be `nobody`
    (root / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n"
        f"  include {REPO}/compose/front/cross-site.conf;\n  include {root}/dagster.conf;\n"
        f"  include {root}/ui.conf;\n}}\n")
    command = [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            if all(_request(ports[name], "GET", "/healthz")[0] == 200 for name in ports):
                break
        except OSError:
            pass
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "nginx did not answer /healthz"
        time.sleep(0.1)
    yield {name: (ports[name], backends[name]) for name in ports}
    process.terminate()
    process.wait(timeout=10)
    for backend in backends.values():
        backend.shutdown()


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             login: tuple[str, str] | None = None) -> tuple[int, bytes]:
    headers = dict(headers or {})
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


LOGIN = (USER, PASSWORD)
JSON = {"Content-Type": "application/json"}
QUERY = b'{"query": "{version}"}'
MUTATION = b'{"query": "mutation { launchRun(executionParams: {}) { __typename } }"}'


def _refused(port: int, backend: _Backend, *args, **kwargs) -> int:
    before = len(backend.seen)
    status, _ = _request(port, *args, **kwargs)
    assert len(backend.seen) == before, f"reached the backend: {backend.seen[before:]}"
    return status


def test_dagster_front_asks_for_a_login(fronts):
    port, backend = fronts["dagster"]
    assert _refused(port, backend, "POST", "/graphql", QUERY, JSON) == 401
    assert _refused(port, backend, "POST", "/graphql", QUERY, JSON, login=(USER, "wrong")) == 401
    assert _refused(port, backend, "GET", "/", login=None) == 401
    status, body = _request(port, "POST", "/graphql", QUERY, JSON, login=LOGIN)
    assert status == 200 and b"version" in body
    same_origin = {**JSON, "Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    assert _request(port, "POST", "/graphql", MUTATION, same_origin, login=LOGIN)[0] == 200  # the UI itself
    assert backend.seen[-1][2] is None  # the front's login never reaches Dagster


def test_dagster_front_refuses_cross_site_mutations_even_with_the_login(fronts):
    port, backend = fronts["dagster"]
    mutation = "query=mutation%20%7B%20launchRun%20%7D"
    assert _refused(port, backend, "GET", f"/graphql?{mutation}", login=LOGIN) == 405
    assert _refused(port, backend, "GET", "/graphql?query=%6Dutation%7Bx%7D", login=LOGIN) == 405  # any spelling
    same_origin = {**JSON, "Origin": f"http://127.0.0.1:{port}"}
    assert _refused(port, backend, "POST", f"/graphql?{mutation}", b"{}", same_origin, login=LOGIN) == 405  # any method
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _refused(port, backend, "POST", "/graphql", mutation.encode(), form, login=LOGIN) == 415
    assert _refused(port, backend, "POST", "/graphql", MUTATION, {"Content-Type": "text/plain"}, login=LOGIN) == 415
    assert _refused(port, backend, "POST", "/graphql", mutation.encode(), form) in (401, 415)  # nor without it
    foreign = {**JSON, "Origin": "http://evil.example"}
    assert _refused(port, backend, "POST", "/graphql", MUTATION, foreign, login=LOGIN) == 403
    assert _refused(port, backend, "POST", "/graphql", MUTATION, {**JSON, "Origin": "null"}, login=LOGIN) == 403
    assert _refused(port, backend, "POST", "/graphql", MUTATION, {**JSON, "Sec-Fetch-Site": "cross-site"},
                    login=LOGIN) == 403
    assert _refused(port, backend, "POST", "/report_asset_materialization/x", b"{}", foreign, login=LOGIN) == 403
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    assert _refused(port, backend, "GET", "/graphql", headers={**upgrade, "Origin": "http://evil.example"},
                    login=LOGIN) == 403
    assert _request(port, "GET", "/graphql", headers={**upgrade, "Origin": f"http://127.0.0.1:{port}"},
                    login=LOGIN)[0] != 403  # the UI's own subscriptions pass


def test_health_probes_are_open_and_answer_nothing_else(fronts):
    for port, backend in fronts.values():
        before = len(backend.seen)
        assert _request(port, "GET", "/healthz") == (200, b"ok\n")
        assert len(backend.seen) == before


def test_ui_front_asks_for_a_login_and_refuses_foreign_origins(fronts):
    port, backend = fronts["ui"]
    assert _refused(port, backend, "GET", "/") == 401
    assert _refused(port, backend, "GET", "/_stcore/health") == 401
    assert _request(port, "GET", "/", login=LOGIN)[0] == 200
    upload = {"Content-Type": "multipart/form-data; boundary=x", "Origin": f"http://127.0.0.1:{port}"}
    assert _request(port, "POST", "/_stcore/upload_file/x", b"--x--\r\n", upload, login=LOGIN)[0] == 200
    assert _refused(port, backend, "POST", "/_stcore/upload_file/x", b"--x--\r\n",
                    {**upload, "Origin": "http://evil.example"}, login=LOGIN) == 403
    stream = {"Upgrade": "websocket", "Connection": "Upgrade", "Origin": "http://evil.example"}
    assert _refused(port, backend, "GET", "/_stcore/stream", headers=stream, login=LOGIN) == 403


def test_ui_front_names_the_signed_in_person_and_a_browser_cannot_claim_another(fronts):
    port, backend = fronts["ui"]
    assert _request(port, "GET", "/", headers={"X-Readmit-User": "chief-of-medicine"}, login=LOGIN)[0] == 200
    assert backend.users[-1] == USER  # the approvals on the Models page are signed by the front's login
