"""A recording stand-in for Slack's Web API, served over real HTTP on loopback.

It answers the methods the bot uses the way Slack does (`{"ok": true, ...}`, message `ts`, DM channel
ids), keeps posted messages per channel so `conversations.history` can find them (with metadata), can
be told to answer one call with HTTP 429 + Retry-After, and records every call and any method nobody
expected, so tests can assert on exactly what reached "Slack".
"""
from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KNOWN = {"auth.test", "chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.publish",
         "conversations.open", "conversations.history", "files.getUploadURLExternal",
         "files.completeUploadExternal", "upload"}


class SlackFake:
    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.unexpected: list[str] = []
        self.messages: dict[str, list[dict]] = {}
        self.fail_next: dict[str, tuple[int, int]] = {}  # method -> (status, retry_after)
        self.lose_answer: set = set()  # methods whose next call is carried out but answered with HTTP 500
        self.lock = threading.Lock()
        self._ts = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                return

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                method = self.path.strip("/").split("/")[-1].split("?")[0]
                status, body, headers = fake.handle(method, raw, dict(self.headers))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "SlackFake":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- recording ------------------------------------------------------------------------------------
    def handle(self, method: str, raw: bytes, headers: dict) -> tuple[int, dict, dict]:
        ctype = headers.get("Content-Type", "")
        if method == "upload":
            args: dict = {"bytes": len(raw)}
        elif "json" in ctype:
            args = json.loads(raw or b"{}")
        else:
            args = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
            for key in ("blocks", "metadata", "view", "files"):
                if isinstance(args.get(key), str):
                    with contextlib.suppress(json.JSONDecodeError):  # keep it as text if it is not JSON
                        args[key] = json.loads(args[key])
        with self.lock:
            call = {"method": method, "args": args, "auth": headers.get("Authorization"), "at": time.time()}
            self.calls.append(call)
            if method not in KNOWN:
                self.unexpected.append(method)
                return 200, {"ok": False, "error": "unknown_method"}, {}
            if method in self.fail_next:
                status, retry = self.fail_next.pop(method)
                call["failed"] = status
                return status, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry)}
            answer = self._answer(method, args)
            if method in self.lose_answer:  # Slack did it, but the answer never arrived intact
                self.lose_answer.discard(method)
                call["lost_answer"] = True
                return 500, {"ok": False, "error": "internal_error"}, {}
            return 200, answer, {}

    def _answer(self, method: str, args: dict) -> dict:
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT00001", "bot_id": "BBOT00001", "team_id": "T0TEAM001", "url": ""}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", "X"))[1:]}}
        if method == "chat.postMessage":
            ts = f"{1700000000 + next(self._ts)}.000100"
            msg = {**args, "ts": ts}
            self.messages.setdefault(args["channel"], []).append(msg)
            return {"ok": True, "channel": args["channel"], "ts": ts, "message": msg}
        if method == "chat.update":
            for msg in self.messages.get(args["channel"], []):
                if msg["ts"] == args["ts"]:
                    msg.update(args)
            return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
        if method == "conversations.history":
            msgs = list(reversed(self.messages.get(args.get("channel"), [])))
            return {"ok": True, "messages": [{"ts": m["ts"], "text": m.get("text"), "metadata": m.get("metadata")}
                                             for m in msgs]}
        if method == "files.getUploadURLExternal":
            return {"ok": True, "upload_url": f"http://127.0.0.1:{self.port}/upload", "file_id": "F0FILE001"}
        if method == "files.completeUploadExternal":
            return {"ok": True, "files": [{"id": "F0FILE001"}]}
        if method == "upload":
            return {"ok": True}
        return {"ok": True}

    # -- assertions -----------------------------------------------------------------------------------
    def of(self, method: str) -> list[dict]:
        with self.lock:
            return [c for c in self.calls if c["method"] == method and not c.get("failed")]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0, where=None) -> list[dict]:  # noqa: ANN001
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = [c for c in self.of(method) if where is None or where(c)]
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} {method} call(s); got {[c['method'] for c in self.calls]}")
