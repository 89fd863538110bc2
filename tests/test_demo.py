"""`make demo`'s promise: zero configuration, and the curl line it prints is answered 200."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from tests.support.serve import gateway_serve, serve_env


def test_the_printed_curl_line_gets_a_200_from_the_demo_service() -> None:
    with gateway_serve(serve_env()) as served:
        output = served.output()
        assert "demo access key: LTAIdemoAccessKey" in output
        line = next(ln.strip() for ln in output.splitlines() if ln.strip().startswith("curl "))
        port = served.url.rsplit(":", 1)[1]
        # The hint names the port it was started on; the test's port is a free one.
        assert re.search(rf"http://127\.0\.0\.1:{port}/\?", line), line
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        first = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=10)
        assert '"Regions":{"Region":[' in first.stdout, first.stdout
        again = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=10)
        assert '"Code":"SignatureNonceUsed"' in again.stdout  # the nonce is single-use, as it says
