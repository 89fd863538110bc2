"""ASGI plumbing the tests' apps share."""

from __future__ import annotations

from starlette.types import Receive, Send


async def read_body(receive: Receive) -> bytes:
    """The whole request body, however many ``http.request`` messages it came in."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer a lifespan scope: started at once, stopped when asked (for apps with nothing to set up)."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})
