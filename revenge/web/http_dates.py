"""HTTP dates (RFC 9110 §5.6.7): IMF-fixdate out; IMF-fixdate, RFC 850 and asctime in."""
from __future__ import annotations

import calendar
import email.utils
import time

_MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}


def format_http_date(ts: float) -> str:
    return email.utils.formatdate(int(ts), usegmt=True)


def parse_http_date(value: str | None) -> int | None:
    """Seconds since the epoch, or None when the value is not one of the three HTTP date forms."""
    if not value:
        return None
    v = value.strip()
    for fmt in ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"):
        try:
            t = time.strptime(v.replace("  ", " 0") if fmt.startswith("%a %b") else v, fmt)
        except ValueError:
            continue
        return calendar.timegm(t)
    return None
