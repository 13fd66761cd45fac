"""The signed-request scheme shared by the event webhook and outgoing webhooks: what it accepts and
the reason it gives for everything it refuses."""
from __future__ import annotations

from leadflow.core import SIGNATURE_HEADER, TIMESTAMP_HEADER, TOLERANCE, sign, verify

SECRET = "s3cret"
BODY = b'{"id":"e1"}'
NOW = 1793610000


def check(headers: dict, body: bytes = BODY, now: float = NOW, secret: str = SECRET) -> str | None:
    return verify(secret, body, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), now=now)


def test_a_signed_request_verifies_within_the_window_either_way():
    headers = sign(SECRET, BODY, now=NOW)
    assert check(headers) is None
    assert check(headers, now=NOW + TOLERANCE) is None and check(headers, now=NOW - TOLERANCE) is None


def test_a_replayed_request_is_refused_once_it_is_older_than_the_window():
    assert "old" in check(sign(SECRET, BODY, now=NOW), now=NOW + TOLERANCE + 1)
    assert "in the future" in check(sign(SECRET, BODY, now=NOW), now=NOW - TOLERANCE - 1)


def test_a_changed_body_timestamp_or_secret_breaks_the_signature():
    headers = sign(SECRET, BODY, now=NOW)
    assert "does not match" in check(headers, body=BODY + b" ")
    assert "does not match" in check(headers, secret="other")
    assert "does not match" in check({**headers, TIMESTAMP_HEADER: str(NOW + 1)})


def test_missing_or_malformed_headers_say_which():
    headers = sign(SECRET, BODY, now=NOW)
    assert SIGNATURE_HEADER in check({TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER]})
    assert TIMESTAMP_HEADER in check({SIGNATURE_HEADER: headers[SIGNATURE_HEADER]})
    assert "digits only" in check({**headers, TIMESTAMP_HEADER: "1e9"})
