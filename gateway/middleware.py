"""`GatewayMiddleware`: the chain in front of any ASGI app, and the one place errors become bodies."""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics
from gateway.accesslog import log_request, redact_uvicorn_access_log
from gateway.chain import build_chain
from gateway.context import RequestContext
from gateway.errors import Err, GatewayError
from gateway.forwarded import ClientAddress, Headers, forwarded_headers
from gateway.identity import client_headers, downstream_headers
from gateway.layers.parse import ClientDisconnected, guess_format
from gateway.ops import OpsApp
from gateway.parsing import BadInput
from gateway.policy import DEMO_POLICY, Policy, load_policy
from gateway.resources import PolicyResolver, ResourceResolver
from gateway.respond import Responder, send_error, send_stored
from gateway.settings import Settings
from gateway.stores import Store, StoredAnswer, StoreUnavailable, open_store
from gateway.stores.renewal import LeaseRenewal
from gateway.target import check_target

log = logging.getLogger("gateway")

Observer = Callable[[RequestContext], None]


def freeze_startup_objects() -> None:
    """Move everything alive after start-up out of reach of the collector's full passes.

    The policy, the code and the app live as long as the process, yet a full collection walks them
    all: with the bench policy one pass took 16 ms and ran 8 times in 4 s of Redis load (p99 17 →
    5 ms without them); with 1,000,000 access keys one pass takes ~280 ms, during which no request
    moves. Collected first, so that start-up garbage is freed rather than kept.
    """
    gc.collect()
    gc.freeze()


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
    ``resolver`` may be injected (tests, a service with its own resource inventory).
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
    ) -> None:
        self.app = app
        self.settings = settings = settings or Settings.from_env()
        redact_uvicorn_access_log()
        if policy is None:
            if settings.config is None:
                log.warning("GATEWAY_CONFIG is unset: using the bundled demo policy (%s)", DEMO_POLICY)
            policy = load_policy(settings.config)
        self.policy = policy
        # "is None", not "or": an empty MemoryStore has len() 0 and so is falsy.
        self.store = store if store is not None else open_store(
            settings.redis_url, prefix=settings.redis_prefix, timeout=settings.redis_timeout
        )
        resolver = resolver if resolver is not None else PolicyResolver(policy)
        self.layers = build_chain(settings, policy, self.store, resolver)
        self.ops = OpsApp(settings.ops_prefix, self.store)
        self.client_address = ClientAddress(settings.trusted_proxies)
        # The access log and the metrics watch every request; callers may add their own observers.
        self.observers = (*((log_request,) if settings.access_log else ()), metrics.observe,
                          *(o for o in observers if o is not metrics.observe))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, self._closing_store(send))
            elif scope["type"] == "websocket":
                # No check of the chain applies to a websocket: refused before it is accepted, as
                # ProxyApp does, or middleware mode would be the weaker one.
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.app(scope, receive, send)
            return
        if scope["path"].startswith(self.ops.prefix + "/"):
            await self.ops(scope, receive, send)
            return
        settings = self.settings
        ctx = RequestContext.start(scope, receive, settings.default_format, settings.host_id,
                                   settings.max_header_bytes)
        # No await inside an except or finally block, here and in _forward (see the note above the class).
        try:
            error: GatewayError | None = None
            try:
                if ctx.head_too_large:  # `gateway serve` answers 431 first; another server may not bound heads
                    raise BadInput("request headers larger than GATEWAY_MAX_HEADER_BYTES")
                check_target(scope)  # before any layer: a refused target costs no nonce or quota
                client = client_headers(scope["headers"])  # the same: refuses a folded spelling of a checked header
                for layer in self.layers:
                    pending = layer.check(ctx)
                    if pending is not None:
                        await pending
                if ctx.replay is not None:
                    await send_stored(ctx, send, ctx.replay)
                else:
                    await self._forward(ctx, scope, client, send)
            except GatewayError as exc:
                guess_format(ctx)
                error = exc
            except ClientDisconnected:
                ctx.code, ctx.status = "ClientDisconnected", 499
            except Exception:
                log.exception("request %s failed in the gateway", ctx.request_id)
                error = GatewayError(Err.INTERNAL_ERROR)
            if error is not None:
                await send_error(ctx, send, error)
        finally:
            for observe in self.observers:
                try:
                    observe(ctx)
                except Exception:  # an observer must never turn an answered request into a crash
                    log.exception("observer %r failed on request %s", observe, ctx.request_id)

    async def _forward(self, ctx: RequestContext, scope: Scope, client: Headers, send: Send) -> None:
        renewal = self._renewal(ctx)
        responder = Responder(ctx, send, keep=self._keeper(ctx, renewal), max_answer=self.settings.max_answer_bytes)
        downstream = self._downstream(ctx, scope, client)
        escaped: BaseException | None = None  # settled first, then raised on: a finally, without its await
        try:
            error: GatewayError | None = None
            try:
                if renewal is not None:  # here, so that _settle_token always stops it
                    renewal.start()
                await self.app(downstream, self._replay(ctx), responder)
                if responder.refused and not responder.started:  # the app swallowed the refusal
                    error = GatewayError(Err.INTERNAL_ERROR)
            except GatewayError as exc:  # ApiError raised by the wrapped service
                if responder.started:
                    log.error("request %s: %r raised after the answer started", ctx.request_id, exc)
                else:
                    error = exc
            except Exception:
                log.exception("request %s failed in the wrapped service", ctx.request_id)
                if not responder.started:
                    error = GatewayError(Err.INTERNAL_ERROR)
            if error is not None:
                await send_error(ctx, send, error)
        except BaseException as exc:
            escaped = exc
        if ctx.idempotency is not None:
            await self._settle_token(ctx, responder, renewal)
        if escaped is not None:
            raise escaped

    def _downstream(self, ctx: RequestContext, scope: Scope, client: Headers) -> Scope:
        """The scope the service gets: the gateway's identity and client-IP headers, and its client."""
        address = self.client_address.of(scope)
        host = ctx.headers.get("host")
        forwarded = forwarded_headers(address, scope.get("scheme", "http"),
                                      None if host is None else host.encode("latin-1"))
        downstream = {**scope, "headers": downstream_headers(ctx, client, forwarded), "gateway": ctx}
        peer = scope.get("client")
        if address is not None and (peer is None or peer[0] != address):
            # request.client must agree with X-Forwarded-For: a trusted proxy's client has no known port.
            downstream["client"] = (address, 0)
        return downstream

    def _renewal(self, ctx: RequestContext) -> LeaseRenewal | None:
        """Keeps an admitted ClientToken's lease while the call runs; None when it holds no token."""
        claim, key = ctx.idempotency, ctx.key
        if claim is None or key is None:
            return None
        return LeaseRenewal(self.store, str(key.account.id), claim, ctx.request_id)

    def _keeper(self, ctx: RequestContext,
                renewal: LeaseRenewal | None) -> Callable[[StoredAnswer], Awaitable[None]] | None:
        """Stores a ClientToken's answer for replay; None when the request holds no token."""
        claim, key = ctx.idempotency, ctx.key
        if claim is None or key is None:
            return None
        scope, ttl_ms = str(key.account.id), self.settings.idempotency_ttl * 1000

        async def keep(answer: StoredAnswer) -> None:
            if renewal is not None:
                renewal.stop()
                if renewal.lost:  # the token is another call's now: its answer is not ours to replace
                    return
            try:
                await self.store.store_answer(scope, claim, answer, ttl_ms)
            except StoreUnavailable as exc:
                # The lease expires on its own; until then a retry is told LastTokenProcessing.
                log.error("could not store the ClientToken answer of %s: %s", ctx.request_id, exc)

        return keep

    async def _settle_token(self, ctx: RequestContext, responder: Responder, renewal: LeaseRenewal | None) -> None:
        if renewal is not None:
            renewal.stop()
        claim = ctx.idempotency
        if claim is None or ctx.key is None or responder.kept:
            return
        try:
            # The first call failed (a 5xx, a crash, an answer too large to keep): let a retry run
            # instead of replaying a failure.
            await self.store.release(str(ctx.key.account.id), claim)
        except StoreUnavailable as exc:
            log.error("could not release the ClientToken of %s: %s", ctx.request_id, exc)

    @staticmethod
    def _replay(ctx: RequestContext) -> Receive:
        # The body was read to check it; the wrapped app gets it back untouched, once.
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": ctx.body, "more_body": False}
            return await ctx.receive()

        return receive

    def _closing_store(self, send: Send) -> Send:
        async def on_lifespan(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete" and self.settings.gc_freeze:
                freeze_startup_objects()
            elif message["type"] == "lifespan.shutdown.complete":
                await self.store.aclose()
            await send(message)

        return on_lifespan
