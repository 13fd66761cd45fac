"""A recording stand-in for Slack's Web API, served over real HTTP on loopback.

It answers the methods the bot uses the way Slack does, including the parts that bite:
- `chat.postMessage` takes a conversation id, a user id or a channel *name* (`#sales-queue`) and
  answers with the conversation *id*; `conversations.history`, `conversations.replies`,
  `chat.update` and file shares take ids only: a name gives `channel_not_found`;
- history is newest first, lists no thread replies, pages with `cursor`, honours `oldest`/`latest`,
  and includes `metadata` only when `include_all_metadata` is true; replies list a thread;
- `conversations.list` pages with `cursor` (and may return fewer than `limit`, as Slack does), by
  `types`; `conversations.open` gives a `D...` id;
- `ts` values are wall-clock times, as Slack's are.
The workspace has a few named channels (`channels`); any other well-formed `C`/`G` id is taken as
an existing channel. It can be told to answer calls with an HTTP error + Retry-After (`fail_next`)
or an error code (`errors`), to carry out a call but lose its answer (`lose_answer`: an HTTP 500;
`drop_answer`: the connection closes with no answer at all), to hold a call until the test lets it
go (`hold`: a slow Slack), and it records every call and any method nobody expected.
"""
from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KNOWN = {"auth.test", "chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.publish",
         "conversations.open", "conversations.history", "conversations.replies", "conversations.list",
         "files.getUploadURLExternal", "files.completeUploadExternal", "upload"}
CONVERSATION_ID = re.compile(r"^[CDG][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
WORKSPACE = [("C0GENERAL1", "general", False), ("C0RANDOM01", "random", False), ("C0QUEUE01", "sales-queue", False),
             ("C0MANAGER", "sales-managers", False), ("C0MARKET1", "marketing", False),
             ("G0BOARD001", "board", True), ("C0SUPPORT1", "support", False)]


class SlackError(Exception):
    def __init__(self, error: str):
        self.error = error


def truthy(value: object) -> bool:
    return value is True or str(value).lower() in ("1", "true")


class SlackFake:
    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.unexpected: list[str] = []
        self.messages: dict[str, list[dict]] = {}  # conversation id -> messages (replies too), oldest first
        self.channels: dict[str, dict] = {}  # conversation id -> {"id", "name", "is_private", "is_archived"}
        self.fail_next: dict[str, tuple | list] = {}  # method -> (status, retry_after), or a list of them
        self.errors: dict[str, list[str]] = {}  # method -> error codes for its next calls ({"ok": false})
        self.lose_answer: set = set()  # methods whose next call is carried out but answered with HTTP 500
        self.drop_answer: set = set()  # methods whose next call is carried out, then the connection just closes
        self.hold: dict[str, threading.Event] = {}  # method -> its next call waits for this event first
        self.holding: list[str] = []  # methods with a call waiting in `hold` now
        self.page_size = {"conversations.list": 2, "conversations.history": 100, "conversations.replies": 100}
        self.lock = threading.Lock()
        self._last_ts = 0.0
        for cid, name, private in WORKSPACE:
            self.add_channel(name, cid, private)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                return

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                method = self.path.strip("/").split("/")[-1].split("?")[0]
                status, body, headers = fake.handle(method, raw, dict(self.headers))
                if status == 0:  # carried out; the answer never leaves (a dropped connection)
                    self.close_connection = True
                    return
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

    # -- the workspace ---------------------------------------------------------------------------------
    def add_channel(self, name: str, cid: str | None = None, private: bool = False, archived: bool = False) -> str:
        cid = cid or f"{'G' if private else 'C'}0{len(self.channels):07d}X"
        self.channels[cid] = {"id": cid, "name": name, "is_channel": not private, "is_group": private,
                              "is_private": private, "is_archived": archived}
        return cid

    def id_of(self, channel: str) -> str:
        """The conversation id for a name (`#x` or `x`) or an id, as the fake stores messages under it."""
        cid = self._resolve(channel, names=True)
        assert cid, f"no channel {channel}"
        return cid

    def history_of(self, channel: str) -> list[dict]:
        return self.messages.get(self.id_of(channel), [])

    def _resolve(self, channel: object, names: bool) -> str | None:
        """A conversation id, or None (Slack's channel_not_found). Names only where Slack takes them."""
        text = str(channel or "")
        if CONVERSATION_ID.match(text):
            if text.startswith(("C", "G")) and text not in self.channels:
                self.add_channel(text.lower(), text, text.startswith("G"))  # a channel we did not list: it exists
            return text
        if USER_ID.match(text) and names:
            return "D" + text[1:]  # posting to a user id goes to the bot's DM with them
        if not names:
            return None
        name = text[1:] if text.startswith("#") else text
        return next((cid for cid, c in self.channels.items() if c["name"] == name), None)

    def _ts(self) -> str:
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    # -- recording -------------------------------------------------------------------------------------
    def handle(self, method: str, raw: bytes, headers: dict) -> tuple[int, dict, dict]:
        held = self.hold.pop(method, None)
        if held is not None:
            self.holding.append(method)
            held.wait(30)
            self.holding.remove(method)
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
            if method in self.fail_next:  # not carried out: HTTP status (429 with Retry-After)
                planned = self.fail_next[method]
                if isinstance(planned, list):
                    status, retry = planned.pop(0)
                    if not planned:
                        del self.fail_next[method]
                else:
                    status, retry = self.fail_next.pop(method)
                call["failed"] = status
                error = "ratelimited" if status == 429 else "internal_error"
                return status, {"ok": False, "error": error}, ({"Retry-After": str(retry)} if retry is not None else {})
            if self.errors.get(method):
                call["failed"] = self.errors[method].pop(0)
                return 200, {"ok": False, "error": call["failed"]}, {}
            try:
                answer = self._answer(method, args)
            except SlackError as exc:
                call["failed"] = exc.error
                return 200, {"ok": False, "error": exc.error}, {}
            if method in self.lose_answer:  # Slack did it, but the answer never arrived intact
                self.lose_answer.discard(method)
                call["lost_answer"] = True
                return 500, {"ok": False, "error": "internal_error"}, {}
            if method in self.drop_answer:  # Slack did it; the connection closed before any answer
                self.drop_answer.discard(method)
                call["lost_answer"] = True
                return 0, {}, {}
            return 200, answer, {}

    def _answer(self, method: str, args: dict) -> dict:
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT00001", "bot_id": "BBOT00001", "team_id": "T0TEAM001", "url": ""}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", "X"))[1:]}}
        if method == "conversations.list":
            return self._list(args)
        if method == "chat.postMessage":
            return self._post(args)
        cid = self._resolve(args.get("channel_id" if method == "files.completeUploadExternal" else "channel"),
                            names=method == "chat.postEphemeral")
        if method in ("chat.update", "conversations.history", "conversations.replies",
                      "files.completeUploadExternal") and cid is None:
            raise SlackError("channel_not_found")
        if method == "chat.postEphemeral":  # shown to one user, in place; never in any history
            if cid is None:
                raise SlackError("channel_not_found")
            if not args.get("user"):
                raise SlackError("user_not_in_channel")
            if not args.get("text") and not args.get("blocks"):
                raise SlackError("no_text")
            return {"ok": True, "message_ts": self._ts()}
        if method == "chat.update":
            msg = next((m for m in self.messages.get(cid, []) if m["ts"] == args.get("ts")), None)
            if msg is None:
                raise SlackError("message_not_found")
            msg.update({k: v for k, v in args.items() if k not in ("channel", "ts")})
            return {"ok": True, "channel": cid, "ts": args["ts"]}
        if method == "conversations.history":
            found = [m for m in self.messages.get(cid, []) if m.get("thread_ts") in (None, m["ts"])]
            return self._page(method, self._window(found, args)[::-1], args, "messages")
        if method == "conversations.replies":
            thread = [m for m in self.messages.get(cid, []) if m["ts"] == args.get("ts") or
                      m.get("thread_ts") == args.get("ts")]
            if not thread:
                raise SlackError("thread_not_found")
            return self._page(method, self._window(thread, args), args, "messages")
        if method == "files.getUploadURLExternal":
            return {"ok": True, "upload_url": f"http://127.0.0.1:{self.port}/upload", "file_id": "F0FILE001"}
        if method == "files.completeUploadExternal":
            return {"ok": True, "files": [{"id": "F0FILE001"}]}
        return {"ok": True}

    def _post(self, args: dict) -> dict:
        cid = self._resolve(args.get("channel"), names=True)
        if cid is None:
            raise SlackError("channel_not_found")
        if self.channels.get(cid, {}).get("is_archived"):
            raise SlackError("is_archived")
        if not args.get("text") and not args.get("blocks"):
            raise SlackError("no_text")
        ts = self._ts()
        msg = {**args, "channel": cid, "ts": ts, "user": "UBOT00001"}
        self.messages.setdefault(cid, []).append(msg)
        return {"ok": True, "channel": cid, "ts": ts, "message": msg}

    @staticmethod
    def _window(messages: list[dict], args: dict) -> list[dict]:
        """Messages between `oldest` and `latest` (exclusive unless `inclusive`), oldest first."""
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or 1e12)
        inclusive = truthy(args.get("inclusive"))
        return [m for m in messages if (oldest <= float(m["ts"]) <= latest if inclusive else
                                        oldest < float(m["ts"]) < latest)]

    def _page(self, method: str, items: list[dict], args: dict, field: str) -> dict:
        start = int(args.get("cursor") or 0)
        size = min(int(args.get("limit") or 100), self.page_size.get(method, 100))
        page = items[start:start + size]
        if field == "messages":
            meta = truthy(args.get("include_all_metadata"))
            page = [{k: v for k, v in m.items() if k not in ("channel", "metadata", "include_all_metadata")
                     or (k == "metadata" and meta)} | {"type": "message"} for m in page]
        more = start + size < len(items)
        answer = {"ok": True, field: page, "response_metadata": {"next_cursor": str(start + size) if more else ""}}
        if field == "messages":
            answer["has_more"] = more
        return answer

    def _list(self, args: dict) -> dict:
        types = set(str(args.get("types") or "public_channel").split(","))
        want_private, want_public = "private_channel" in types, "public_channel" in types
        found = [c for c in self.channels.values() if (c["is_private"] and want_private) or
                 (not c["is_private"] and want_public)]
        if truthy(args.get("exclude_archived")):
            found = [c for c in found if not c["is_archived"]]
        return self._page("conversations.list", found, args, "channels")

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
