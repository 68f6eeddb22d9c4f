"""Fetch a file from a list of mirrors, with retries, verified, written atomically.

Each mirror is tried in turn. A transient failure (connection refused or reset, timeout,
HTTP 5xx or 429, a body shorter than its Content-Length) is retried on the same mirror up to
``attempts`` times in all, waiting ``backoff * 2**k`` seconds before retry k (k = 0, 1, ...).
A permanent failure (HTTP 404 and other 4xx, a file that fails verification) moves on to the
next mirror at once: a mirror that serves a bad copy keeps serving it.

The file is streamed into a temporary file in the destination directory, verified there, and
only then renamed onto the final name with ``os.replace`` (atomic on one file system). A failed
or rejected download therefore leaves neither a final file nor a temporary one, and a reader
never sees a half-written file. Only the standard library (urllib) is used.
"""

import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from minigrad.data.idx import DataError

__all__ = ["ATTEMPTS", "BACKOFF", "TIMEOUT", "DownloadError", "download", "mirror_url"]

ATTEMPTS = 3      # tries per mirror
BACKOFF = 0.5     # seconds before the first retry; doubles on each further retry
TIMEOUT = 60.0    # seconds of socket inactivity before a try is abandoned
VERBOSE = True    # report each download on stderr
_CHUNK = 1 << 20
_USER_AGENT = "minigrad-data/0.1 (+urllib)"


class DownloadError(DataError):
    """Every mirror failed. ``failures`` lists one "url: reason" line per mirror."""

    def __init__(self, message, failures):
        super().__init__(message)
        self.failures = list(failures)


class _Transient(Exception):
    """A failure worth retrying on the same mirror."""


def mirror_url(base, filename):
    """The URL of ``filename`` on a mirror whose base URL is ``base``."""
    return base if base.endswith(filename) else base.rstrip("/") + "/" + filename


def _fetch(url, out, timeout):
    """Stream ``url`` into the open binary file ``out``; raise _Transient or a permanent error."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            received = 0
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise DataError(f"HTTP {exc.code} {exc.reason}") from exc
    except http.client.IncompleteRead as exc:
        raise _Transient(f"connection closed early ({len(exc.partial)} bytes read)") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Transient(f"{type(exc).__name__}: {reason}") from exc
    if expected is not None and received != int(expected):
        raise _Transient(f"received {received} bytes, the server announced {expected}")


def _fetch_to(url, dest, verify, attempts, backoff, timeout):
    """Download ``url`` to ``dest`` through a verified temporary file; retry transient errors."""
    directory, name = os.path.split(os.path.abspath(dest))
    for attempt in range(attempts):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, timeout)
            verify(tmp)
            os.replace(tmp, dest)
            return
        except _Transient as exc:
            if attempt + 1 == attempts:
                raise DataError(f"{exc} (after {attempts} tries)") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        time.sleep(backoff * 2 ** attempt)


def download(filename, dest, mirrors, verify, attempts=None, backoff=None, timeout=None):
    """Fetch ``filename`` from the first mirror that serves a good copy and save it as ``dest``.

    Args:
        filename: the name to fetch, appended to each mirror's base URL.
        dest:     the final path; its directory must exist.
        mirrors:  base URLs, tried in order.
        verify:   ``verify(path)`` raises DataError if the file at ``path`` is not acceptable.
        attempts, backoff, timeout: default to the module's ATTEMPTS, BACKOFF, TIMEOUT.

    Returns:
        The URL the file came from.

    Raises:
        DownloadError: no mirror gave a good copy; ``failures`` says why for each.
    """
    attempts = ATTEMPTS if attempts is None else int(attempts)
    backoff = BACKOFF if backoff is None else float(backoff)
    timeout = TIMEOUT if timeout is None else float(timeout)
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    failures = []
    for base in mirrors:
        url = mirror_url(base, filename)
        if VERBOSE:
            print(f"downloading {url}", file=sys.stderr)
        try:
            _fetch_to(url, dest, verify, attempts, backoff, timeout)
        except DataError as exc:
            failures.append(f"{url}: {exc}")
            continue
        return url
    lines = "\n  ".join(failures) if failures else "(no mirrors given)"
    raise DownloadError(f"could not download {filename}:\n  {lines}", failures)
