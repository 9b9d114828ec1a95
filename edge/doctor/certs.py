"""Certificate expiry: of PEM files on the box and of the certificate a TLS server presents."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509

from edge.doctor.report import FAIL, PASS, WARN, Line

RENEW_DAYS = 30  # warn this long ahead: a renewal through the school's IT can take weeks


def expiry_line(check: str, what: str, not_after: datetime.datetime) -> Line:
    """PASS/WARN/FAIL for a certificate valid until not_after (UTC)."""
    now = datetime.datetime.now(datetime.UTC)
    date = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if not_after <= now:
        return Line(FAIL, check, f"{what} expired on {date}: renew it")
    days = (not_after - now).days
    if days < RENEW_DAYS:
        return Line(WARN, check, f"{what} expires on {date} (in {days} days): renew it soon")
    return Line(PASS, check, f"{what} valid until {date}")


def file_expiry_line(check: str, what: str, path: Path) -> Line:
    """Expiry of the first certificate in a PEM file; FAIL when it is missing or unreadable."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return Line(FAIL, check, f"{what} {path} cannot be read: {err.strerror or err}")
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as err:
        return Line(FAIL, check, f"{what} {path} is not a PEM certificate: {err}")
    return expiry_line(check, f"{what} {path}", cert.not_valid_after_utc)


def der_not_after(der: bytes) -> datetime.datetime:
    """The end of validity of a DER certificate (as a TLS peer sends it)."""
    return x509.load_der_x509_certificate(der).not_valid_after_utc
