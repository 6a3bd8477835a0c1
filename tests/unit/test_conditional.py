"""Validators and conditional requests (http.md §4)."""
from __future__ import annotations

from revenge.web.conditional import evaluate, file_etag, if_range_allows
from revenge.web.http_dates import format_http_date, parse_http_date

ETAG = '"abc"'
LM = 1_700_000_000
LM_TEXT = format_http_date(LM)
EARLIER = format_http_date(LM - 10)


def test_file_etag_is_strong_quoted_32_hex_and_changes_with_mtime():
    a = file_etag(1, 2, 3, 4)
    assert a.startswith('"') and a.endswith('"') and len(a) == 34
    assert file_etag(1, 2, 3, 5) != a


def test_evaluation_order():
    assert evaluate("GET", {"if-match": '"other"'}, ETAG, LM) == 412
    assert evaluate("GET", {"if-match": "*"}, ETAG, LM) is None
    assert evaluate("GET", {"if-match": 'W/"abc"'}, ETAG, LM) == 412  # strong comparison
    assert evaluate("GET", {"if-unmodified-since": EARLIER}, ETAG, LM) == 412
    assert evaluate("GET", {"if-unmodified-since": "garbage"}, ETAG, LM) is None
    assert evaluate("GET", {"if-none-match": 'W/"abc"'}, ETAG, LM) == 304  # weak comparison
    assert evaluate("HEAD", {"if-none-match": '"x", "abc"'}, ETAG, LM) == 304
    assert evaluate("GET", {"if-none-match": "*"}, ETAG, LM) == 304
    assert evaluate("GET", {"if-none-match": '"x"', "if-modified-since": LM_TEXT}, ETAG, LM) is None
    assert evaluate("GET", {"if-modified-since": LM_TEXT}, ETAG, LM) == 304
    assert evaluate("GET", {"if-modified-since": EARLIER}, ETAG, LM) is None
    assert evaluate("POST", {"if-modified-since": LM_TEXT}, ETAG, LM) is None


def test_if_range():
    assert if_range_allows({}, ETAG, LM, LM + 100)
    assert if_range_allows({"if-range": ETAG}, ETAG, LM, LM + 100)
    assert not if_range_allows({"if-range": 'W/"abc"'}, ETAG, LM, LM + 100)
    assert not if_range_allows({"if-range": '"old"'}, ETAG, LM, LM + 100)
    assert if_range_allows({"if-range": LM_TEXT}, ETAG, LM, LM + 100)
    assert not if_range_allows({"if-range": LM_TEXT}, ETAG, LM, LM + 0.5)  # modified too recently
    assert not if_range_allows({"if-range": EARLIER}, ETAG, LM, LM + 100)
    assert not if_range_allows({"if-range": "nonsense"}, ETAG, LM, LM + 100)


def test_http_date_forms():
    for text in ("Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"):
        assert parse_http_date(text) == 784111777
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC") is None
    assert parse_http_date(None) is None
