"""Container health check: exit 0 when GET $BBRANGE_HEALTHCHECK_URL answers 2xx within 4 s, 1 otherwise.

The standard library only, so it runs in the slim image without curl or wget.
"""

import os
import sys
import urllib.request

url = os.environ.get("BBRANGE_HEALTHCHECK_URL", "http://127.0.0.1:8000/healthz")
try:
    with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - a fixed local URL
        sys.exit(0 if 200 <= response.status < 300 else 1)
except Exception as e:  # any failure is "unhealthy"
    print(f"unhealthy: {url}: {e}", file=sys.stderr)
    sys.exit(1)
