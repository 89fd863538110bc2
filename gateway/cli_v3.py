"""``gateway sign --signature-method ACS3-...``: a V3-signed request as a curl line (or URL and headers).

``Action`` and ``Version`` become the ``x-acs-action``/``x-acs-version`` headers; the other
``Name=Value`` parameters go in the query (GET) or a form body (POST), as tea-openapi sends an RPC call.
For ACS3-RSA-SHA256 the secret is the private key's PEM (``--private-key-file``), as tea-openapi takes it.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

from gateway.signing import sign_request_v3
from gateway.signing._encoding import encoded_pairs


def sign_v3_lines(endpoint: str, method: str, params: dict[str, str], *, algorithm: str, access_key_id: str,
                  secret: str, curl: bool) -> list[str]:
    """The lines `gateway sign` prints; ValueError when Action or Version is missing."""
    params = dict(params)
    action, version = params.pop("Action", ""), params.pop("Version", "")
    if not action or not version:
        raise ValueError("a V3 request needs Action=... and Version=... (sent as x-acs-action, x-acs-version)")
    parts = urlsplit(endpoint)
    query, body = (params, {}) if method == "GET" else ({}, params)
    form = encoded_pairs(body).encode()
    extra = {"content-type": "application/x-www-form-urlencoded"} if form else None
    headers = sign_request_v3(method=method, host=parts.netloc, path=parts.path or "/", query=query, body=form,
                              action=action, version=version, access_key_id=access_key_id, secret=secret,
                              algorithm=algorithm, extra_headers=extra)
    url = f"{parts.scheme}://{parts.netloc}{parts.path or '/'}"
    if query:
        url += "?" + encoded_pairs(query)
    if not curl:
        return [f"{method} {url}", *(f"{name}: {value}" for name, value in headers.items() if name != "host"),
                *([form.decode()] if form else [])]
    words = ["curl", "-s", *(["-X", "POST"] if method == "POST" else [])]
    for name, value in headers.items():
        if name != "host":  # curl sends the endpoint's own Host, which is what was signed
            words += ["-H", f"{name}: {value}"]
    if form:
        words += ["--data", form.decode()]
    return [" ".join(shlex.quote(word) for word in [*words, url])]
