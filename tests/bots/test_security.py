"""Who may talk to the service, and how it stops: signed webhook requests with a timestamp (no
replays), /healthz details only with credentials, `serve` never open on a public address, and
Ctrl-C on any command ends it with one line and exit 130. Entry points are driven the way callers
drive them: real HTTP on loopback, and the shipped CLI as a subprocess."""
from __future__ import annotations

import hashlib
import hmac
import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from leadflow.bots.config import Settings, is_loopback
from tests.bot_harness import RULES, Service, sql_events
from tests.leadflow_cli import ROOT, clean_env, leadflow_command
from tests.servers import free_port

SECRET = "whsec-test-0001"


def signed(body: bytes, ts: int | str, secret: str = SECRET) -> dict:
    """The documented scheme, computed here independently of engine.signing."""
    mac = hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Leadflow-Timestamp": str(ts), "X-Leadflow-Signature": f"sha256={mac}"}


def test_signed_requests_carry_a_fresh_timestamp_so_a_captured_one_cannot_be_replayed(tmp_path):
    with Service(tmp_path, None, webhook_secret=SECRET) as svc:
        first, second = (json.dumps(e).encode() for e in sql_events("a"))
        now = int(time.time())
        r = svc.http.post("/v1/events", content=first, headers=signed(first, now))
        assert r.status_code == 200 and r.json()["status"] == "applied"
        refused = {
            "captured six minutes ago": signed(second, now - 360),
            "dated six minutes ahead": signed(second, now + 360),
            "signed without the timestamp": {"X-Leadflow-Timestamp": str(now), "X-Leadflow-Signature": "sha256=" +
                                             hmac.new(SECRET.encode(), second, hashlib.sha256).hexdigest()},
            "no timestamp": {"X-Leadflow-Signature": signed(second, now)["X-Leadflow-Signature"]},
            "timestamp not unix seconds": signed(second, "1e9"),
            "another secret": signed(second, now, "not-the-secret"),
            "another body": signed(first, now),
        }
        for case, headers in refused.items():
            r = svc.http.post("/v1/events", content=second, headers=headers)
            assert r.status_code == 401, case
            assert "X-Leadflow-" in r.json()["error"], case  # the reason names what is wrong
        assert "s old" in svc.http.post("/v1/events", content=second,
                                        headers=signed(second, now - 360)).json()["error"]
        assert svc.service.store.count("events") == 1  # nothing refused was stored
        r = svc.http.post("/v1/events", content=second, headers=signed(second, now - 200))  # within 5 minutes
        assert r.status_code == 200 and r.json()["status"] == "applied"
        assert svc.send_events(sql_events("b")).status_code == 200  # the Bearer token still works
        third = json.dumps(sql_events("c")[0]).encode()  # a sender that pads the time signs what it writes
        r = svc.http.post("/v1/events", content=third, headers=signed(third, f"0{now}"))
        assert r.status_code == 200 and r.json()["status"] == "applied"


def test_healthz_says_only_ok_without_credentials_and_details_with_them(tmp_path):
    with Service(tmp_path, None) as svc:
        assert svc.http.get("/healthz").json() == {"ok": True}
        assert svc.http.get("/healthz", headers={"Authorization": "Bearer wrong"}).json() == {"ok": True}
        store = svc.service.store
        with store.transaction():  # a row no notifier handles, given up on: what a failed delivery leaves
            store.add_outbox("test:failed", "test_only", "a", {})
        row = next(r for r in store.outbox() if r["key"] == "test:failed")
        with store.transaction():
            store.outbox_retry(row["id"], "refused", time.time(), give_up=True)
        details = svc.health()
        assert details["ok"] is True and details["outbox_failed"] == 1 and details["rule_problems"] == []
        assert {"rules_version", "outbox_pending", "slack", "worker"} <= set(details)
        rules = Path(svc.settings.rules) / "rules.yaml"
        rules.write_text(rules.read_text().replace("points: 30", "pionts: 30"))
        deadline = time.time() + 10  # the watcher may first see the file half written, then the whole of it
        while not any("pionts" in p for p in svc.health()["rule_problems"]) and time.time() < deadline:
            time.sleep(0.05)
        assert any("pionts" in p for p in svc.health()["rule_problems"])
        assert svc.http.get("/healthz").json() == {"ok": False}  # the anonymous caller learns no file or line


def test_only_loopback_addresses_count_as_loopback():
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
        assert Settings(host=host).exposure_problem() is None
    for host in ("0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com", "127.0.0.1.nip.io", ""):
        assert not is_loopback(host), host
        assert "LEADFLOW_WEBHOOK_TOKEN" in Settings(host=host).exposure_problem()
        assert Settings(host=host, webhook_token="t").exposure_problem() is None
        assert Settings(host=host, webhook_secret="s").exposure_problem() is None


# ---- the CLI ---------------------------------------------------------------------------------------

def _rules(tmp: Path) -> Path:
    rules = tmp / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.yaml").write_text(RULES)
    return rules


def _leadflow(tmp: Path, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    cmd = leadflow_command("--db", tmp / "lf.db", "--rules", _rules(tmp), *args)
    return subprocess.Popen(cmd, cwd=ROOT, env=clean_env(PYTHONUNBUFFERED="1", **(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def _finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the command did not end")
    return proc.returncode, proc.stderr.read().decode()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_refuses_a_public_address_without_webhook_credentials(tmp_path, host):
    code, err = _finish(_leadflow(tmp_path, "serve", "--host", host, "--port", str(free_port())))
    assert code == 2
    assert "LEADFLOW_WEBHOOK_TOKEN" in err and "LEADFLOW_WEBHOOK_SECRET" in err and "Traceback" not in err


def _wait_for(check, what: str, timeout: float = 20):  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            done = check()
        except (httpx.HTTPError, sqlite3.Error):
            done = False  # not listening or not written yet
        if done:
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen")


def _events_stored(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


def _lines(start: int, n: int) -> bytes:
    return b"".join(json.dumps({"id": f"e{i}", "lead": f"l{i % 50}", "type": "page_view",
                                "at": "2026-11-02T09:00:00Z"}).encode() + b"\n" for i in range(start, start + n))


def _interrupted(code: int, err: str) -> None:
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err and "durable" not in err


def test_ctrl_c_while_ingest_waits_on_an_open_pipe(tmp_path):
    proc = _leadflow(tmp_path, "ingest", "-", stdin=subprocess.PIPE)
    proc.stdin.write(_lines(0, 600))  # one batch of 500 is committed, the rest waits for more input
    proc.stdin.flush()
    _wait_for(lambda: _events_stored(tmp_path / "lf.db") >= 500, "the first batch")
    proc.send_signal(signal.SIGINT)
    code, err = _finish(proc)
    _interrupted(code, err)
    assert err.strip() == "interrupted"  # the whole of stderr: one line
    with sqlite3.connect(tmp_path / "lf.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 500  # the open batch rolled back
    proc.stdin.close()


def test_ctrl_c_while_the_engine_is_busy(tmp_path):
    proc = _leadflow(tmp_path, "ingest", "-", stdin=subprocess.PIPE)

    def feed() -> None:  # never stop writing: the signal lands while events are being evaluated
        start = 0
        try:
            while True:
                proc.stdin.write(_lines(start, 200))
                proc.stdin.flush()
                start += 200
        except (BrokenPipeError, ValueError, OSError):
            return

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    _wait_for(lambda: _events_stored(tmp_path / "lf.db") >= 1000, "two batches")
    proc.send_signal(signal.SIGINT)
    code, err = _finish(proc)
    _interrupted(code, err)
    writer.join(timeout=10)
    with sqlite3.connect(tmp_path / "lf.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_ctrl_c_stops_serve_and_worker_with_130(tmp_path):
    port = free_port()
    serve = _leadflow(tmp_path, "serve", "--port", str(port))
    _wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["ok"], "serve answering")
    serve.send_signal(signal.SIGINT)
    _interrupted(*_finish(serve))
    fresh = tmp_path / "worker"
    fresh.mkdir()
    worker = _leadflow(fresh, "worker")
    _wait_for(lambda: _events_stored(fresh / "lf.db") >= 0, "the worker creating its database")
    worker.send_signal(signal.SIGINT)
    _interrupted(*_finish(worker))



# ---- the loopback rule behind a proxy --------------------------------------------------------------

SLACK_ENV = {"SLACK_BOT_TOKEN": "xoxb-test-0000-leadflow", "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5"}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0"])
def test_serve_with_slack_refuses_to_start_without_webhook_credentials_whatever_the_host(tmp_path, host):
    """Slack needs a public URL, so a Slack deployment sits behind a proxy: loopback protects nothing."""
    code, err = _finish(_leadflow(tmp_path, "serve", "--host", host, "--port", str(free_port()), env=SLACK_ENV))
    assert code == 2, err
    assert "LEADFLOW_WEBHOOK_TOKEN" in err and "Slack" in err and "Traceback" not in err
    assert Settings(host=host, bot_token="xoxb-1", signing_secret="s", webhook_secret="w").exposure_problem() is None


def test_without_credentials_a_relayed_request_is_refused(tmp_path):
    """No credential: only callers on this machine may write events. Whatever a reverse proxy (or a
    browser) relays is refused, with the remedy, and /healthz tells such a caller nothing."""
    port = free_port()
    serve = _leadflow(tmp_path, "serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: httpx.get(url + "/healthz", timeout=2).json()["ok"], "serve answering")
        event = {"id": "p-1", "lead": "p", "type": "page_view", "at": "2026-11-02T09:00:00Z"}
        relayed = [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9;proto=https"},
                   {"X-Real-IP": "203.0.113.9"}, {"X-Forwarded-Host": "leadflow.example.com"},
                   {"X-Forwarded-Proto": "https"}, {"Via": "1.1 caddy"}, {"Host": "leadflow.example.com"},
                   {"Origin": "https://evil.example"}]
        for headers in relayed:
            r = httpx.post(url + "/v1/events", json={**event, "id": f"p-{len(headers)}"}, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert "LEADFLOW_WEBHOOK_TOKEN" in r.json()["error"], headers
            h = httpx.get(url + "/healthz", headers=headers)
            assert h.status_code == 401 and set(h.json()) == {"error"}, (headers, h.text)
        assert "behind a proxy" in httpx.get(url + "/healthz", headers={"X-Forwarded-For": "1.2.3.4"}).json()["error"]
        assert _events_stored(tmp_path / "lf.db") == 0
        r = httpx.post(url + "/v1/events", json=event)  # a caller on this machine, straight to the port
        assert r.status_code == 200 and r.json()["status"] == "applied"
        assert "rules_version" in httpx.get(url + "/healthz").json()
        assert httpx.get(f"http://localhost:{port}/healthz").status_code == 200
    finally:
        serve.send_signal(signal.SIGINT)
        _finish(serve)


# ---- no header value gets a 5xx ----------------------------------------------------------------------

def _status(port: int, method: str, path: str, headers: dict[str, bytes], body: bytes = b"{}") -> int:
    """One request written byte for byte (no client library refusing odd values first); its status."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n".encode()
    if method == "POST":
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    for name, value in headers.items():
        head += name.encode() + b": " + value + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + b"\r\n" + (body if method == "POST" else b""))
        line = conn.makefile("rb").readline()
    assert line.startswith(b"HTTP/1.1 "), (path, line)  # an answer, not a dropped connection
    return int(line.split()[1])


def _header_values():  # noqa: ANN202
    from hypothesis import strategies as st

    now = int(time.time())
    value = st.one_of(
        st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=60).map(str.encode),
        st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        st.integers(13, 5000).map(lambda n: b"9" * n),  # past a float (309 digits) and int()'s 4,300
        st.integers(-10 ** 14, 10 ** 14).map(lambda n: str(n).encode()),
        st.integers(now - 400, now + 400).map(lambda n: str(n).encode()),  # in and out of the window
        st.sampled_from(["١٧٠٠٠٠٠٠٠٠", "¹⁷⁰⁰", "１７００", "1e9", "0x10", "+17", "1_7", "00017000000000", "-0"])
        .map(lambda t: t.encode("utf-8")))
    def prefixed(*prefixes: bytes):  # noqa: ANN202 - a well-formed start, then anything
        return st.tuples(st.sampled_from([b"", *prefixes]), value).map(b"".join)

    return st.fixed_dictionaries({}, optional={
        "X-Slack-Request-Timestamp": value, "X-Slack-Signature": prefixed(b"v0="), "X-Leadflow-Timestamp": value,
        "X-Leadflow-Signature": prefixed(b"sha256="), "Authorization": prefixed(b"Bearer ", b"Bearer hook-token-123")})


def test_no_value_of_an_authentication_header_gets_a_5xx(tmp_path):
    """Timestamps, signatures and tokens are read from anonymous callers: 400 nines (a float
    overflow), 5,000 digits (int() refuses), Arabic-Indic or superscript digits, bytes that are no
    text. One real server for the whole property; every request gets a 4xx (or /healthz its 200)."""
    from hypothesis import example, given, settings

    from tests.bot_harness import Service
    from tests.slack_fake import SlackFake

    with SlackFake() as fake, Service(tmp_path, fake, webhook_secret=SECRET) as svc:
        port = int(svc.url.rsplit(":", 1)[1])

        @settings(max_examples=120, deadline=None, derandomize=True, database=None)
        @given(headers=_header_values())
        @example(headers={"X-Slack-Request-Timestamp": b"9" * 400, "X-Slack-Signature": b"v0=00"})
        @example(headers={"X-Slack-Request-Timestamp": b"9" * 5000, "X-Slack-Signature": b"v0=00"})
        @example(headers={"X-Leadflow-Timestamp": b"9" * 5000, "X-Leadflow-Signature": b"sha256=00"})
        @example(headers={"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠".encode(), "X-Slack-Signature": b"v0=00"})
        def check(headers: dict[str, bytes]) -> None:
            for method, path in (("POST", "/slack/events"), ("POST", "/v1/events"), ("GET", "/healthz")):
                status = _status(port, method, path, headers)
                assert status < 500, (path, status, {k: v[:40] for k, v in headers.items()})
                if method == "POST":
                    assert status in (400, 401), (path, status)  # nothing here is authentic

        check()
        assert svc.health()["ok"] is True and svc.service.store.count("events") == 0


def test_the_access_log_is_off_unless_asked_for():
    assert Settings.from_env({}).access_log is False
    assert Settings.from_env({"LEADFLOW_ACCESS_LOG": "1"}).access_log is True
    assert Settings.from_env({"LEADFLOW_ACCESS_LOG": "no"}).access_log is False
