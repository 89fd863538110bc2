"""`GatewayMiddleware`: the chain in front of any ASGI app, and the one place errors become bodies."""

from __future__ import annotations

import logging
import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.admitted import Admitted
from gateway.build import Gateway, Observer, build
from gateway.call import Call, Exchange
from gateway.catalog import Err
from gateway.chain import Chain
from gateway.errors import BadInput, ClientDisconnected, GatewayError
from gateway.forwarded import Headers, forwarded_headers
from gateway.identity import client_headers, downstream_headers
from gateway.live import LiveReload
from gateway.parse import guess_format
from gateway.policy import Policy
from gateway.policy.roles import ASSUME_ROLE_API
from gateway.reload import Reload, Reloader
from gateway.resources import ResourceResolver
from gateway.respond import Responder, send_error, send_stored
from gateway.settings import Settings
from gateway.stores import Store
from gateway.target import check_target

log = logging.getLogger("gateway")


# This module is compiled in the opt-in mypyc build (setup.py), where an await inside an except or a
# finally block can raise an exception that was already handled: mypyc keeps "the exception being
# handled" in the thread's state, not per coroutine, and an exception the Task throws in (a future's
# failure: a refused connect, aiohttp's read timeout) and that the wrapped app caught and replaced
# stays there; a block of ours that then awaits re-raised it after its own answer was sent (a second
# answer followed, tests/test_faults.py). So the handlers only record what to answer, and the awaits
# come after the try statement; interpreted, the behaviour is the same.
class GatewayMiddleware:
    """Checks every HTTP request against the policy before ``app`` sees it (CONTRACT §1–4).

    Configured from ``GATEWAY_*`` variables unless ``settings`` is given; ``policy``, ``store`` and
    ``resolver`` may be injected (tests, a service with its own resource inventory), or everything
    built beforehand with `gateway.build.build` and passed as ``gateway``. `reload` reloads the policy
    file live; ``live=True`` (what `gateway serve` does) also reloads it on SIGHUP and, with
    ``GATEWAY_CONFIG_WATCH``, when the file changes, from lifespan start-up to shutdown.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings | None = None,
        policy: Policy | None = None,
        store: Store | None = None,
        resolver: ResourceResolver | None = None,
        observers: tuple[Observer, ...] = (),
        gateway: Gateway | None = None,
        live: bool = False,
    ) -> None:
        self.gateway = gateway = gateway if gateway is not None else build(
            settings, policy=policy, store=store, resolver=resolver, observers=observers)
        self.app = app
        self.settings, self.store, self.observers = gateway.settings, gateway.store, gateway.observers
        self.chain, self.ops, self.client_address = gateway.chain, gateway.ops, gateway.client_address
        self._ops_paths = gateway.ops.prefix + "/"  # the ops endpoints' paths start so (a reload keeps ops)
        self.reloader = Reloader(gateway, self._swap)
        self.live = LiveReload(self.reloader.reload, lambda: self.reloader.path,
                               watch=gateway.settings.config_watch) if live else None

    async def reload(self, path: str | os.PathLike[str] | None = None) -> Reload:
        """Reload the policy file (``path``, else the one in force), validated first; an invalid file
        changes nothing. Requests in flight finish with the policy they started with (gateway.reload)."""
        return await self.reloader.reload(path)

    def _swap(self, gateway: Gateway) -> None:
        # One reference for everything built from the policy: a request reads self.chain once.
        self.gateway, self.chain = gateway, gateway.chain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = self.gateway.lifespan(send)
                await self.app(scope, receive, send if self.live is None else self.live.lifespan(send))
            elif scope["type"] == "websocket":
                # No check of the chain applies to a websocket: refused before it is accepted, as
                # ProxyApp does, or middleware mode would be the weaker one.
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.app(scope, receive, send)
            return
        if scope["path"].startswith(self._ops_paths):
            await self.ops(scope, receive, send)
            return
        settings = self.settings
        exchange = Exchange.start(scope, receive, settings.default_format, settings.host_id,
                                  settings.max_header_bytes)
        # No await inside an except or finally block, here and in _forward (see the note above the class).
        try:
            error: GatewayError | None = None
            try:
                if exchange.head_too_large:  # `gateway serve` answers 431 first; another server may not bound heads
                    raise BadInput("request headers larger than GATEWAY_MAX_HEADER_BYTES")
                check_target(scope)  # before any check: a refused target costs no nonce or quota
                client = client_headers(scope["headers"])  # the same: refuses a folded spelling of a checked header
                chain = self.chain
                parsed = chain.parse(exchange)
                call = parsed if isinstance(parsed, Call) else await parsed
                exchange.call, exchange.format, exchange.format_known = call, call.format, True
                anonymous = call.anonymous
                for check in chain.anonymous_checks if anonymous else chain.checks:
                    pending = check(call)
                    if pending is not None:
                        await pending
                # An anonymous call's quota is its source address's (`gateway.anonymous`).
                admitted = await chain.admit(call, exchange, self.client_address.of(scope) if anonymous else None)
                if admitted.replay is not None:
                    await send_stored(exchange, send, admitted.replay)
                else:
                    # AssumeRole is answered by the gateway itself, by the chain that admitted it.
                    app = self.app if call.api is not ASSUME_ROLE_API else _assume_role(chain)
                    await self._forward(exchange, call, admitted, scope, client, send, app)
            except GatewayError as exc:
                guess_format(exchange, {})
                error = exc
            except ClientDisconnected:
                exchange.code, exchange.status = "ClientDisconnected", 499
            except Exception:
                log.exception("request %s failed in the gateway", exchange.request_id)
                error = GatewayError(Err.INTERNAL_ERROR)
            if error is not None:
                await send_error(exchange, send, error)
        finally:
            for observe in self.observers:
                try:
                    observe(exchange)
                except Exception:  # an observer must never turn an answered request into a crash
                    log.exception("observer %r failed on request %s", observe, exchange.request_id)

    async def _forward(self, exchange: Exchange, call: Call, admitted: Admitted, scope: Scope, client: Headers,
                       send: Send, app: ASGIApp) -> None:
        holds_token = admitted.holds_token
        responder = Responder(exchange, call.action or "", send, keep=admitted.keep if holds_token else None,
                              max_answer=self.settings.max_answer_bytes)
        downstream = self._downstream(call, scope, client)
        escaped: BaseException | None = None  # settled first, then raised on: a finally, without its await
        try:
            error: GatewayError | None = None
            try:
                admitted.start()  # here, so that settle always stops it
                await app(downstream, _replay(call.body, exchange.receive), responder)
                if responder.refused and not responder.started:  # the app swallowed the refusal
                    error = GatewayError(Err.INTERNAL_ERROR)
            except GatewayError as exc:  # ApiError raised by the wrapped service
                if responder.started:
                    log.error("request %s: %r raised after the answer started", call.request_id, exc)
                else:
                    error = exc
            except Exception:
                log.exception("request %s failed in the wrapped service", call.request_id)
                if not responder.started:
                    error = GatewayError(Err.INTERNAL_ERROR)
            if error is not None:
                await send_error(exchange, send, error)
        except BaseException as exc:
            escaped = exc
        if holds_token:
            await admitted.settle()
        if escaped is not None:
            raise escaped

    def _downstream(self, call: Call, scope: Scope, client: Headers) -> Scope:
        """The scope the service gets: the gateway's identity and client-IP headers, and its client."""
        address = self.client_address.of(scope)
        host = call.headers.get("host")
        forwarded = forwarded_headers(address, scope.get("scheme", "http"),
                                      None if host is None else host.encode("latin-1"))
        downstream = {**scope, "headers": downstream_headers(call, client, forwarded), "gateway": call}
        peer = scope.get("client")
        if address is not None and (peer is None or peer[0] != address):
            # request.client must agree with X-Forwarded-For: a trusted proxy's client has no known port.
            downstream["client"] = (address, 0)
        return downstream


def _assume_role(chain: Chain) -> ASGIApp:
    # Only a policy with [sts] declares the AssumeRole API, and its chain has the answerer: never the service.
    if chain.assume is None:
        raise GatewayError(Err.INTERNAL_ERROR)
    return chain.assume


def _replay(body: bytes, receive: Receive) -> Receive:
    # The body was read to check it; the wrapped app gets it back untouched, once.
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
