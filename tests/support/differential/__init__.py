"""The differential test of #16: what the service reads equals what the gateway checked.

`generate` draws admissible adversarial requests (signed by an attacker holding one valid key),
`capture` is the raw upstream that records the exact bytes the gateway forwards (and the "victim" that
must never hear from it), `record` holds the ASGI recorders of both modes, `parsers` runs the real
service-side parsers (Starlette, aiohttp, urllib, wsgiref) as servers the bytes are replayed to, and
`compare` says, for one admitted request, every way a parser's reading differs from ``ctx``.
"""
