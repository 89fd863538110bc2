"""The bundled demo service: what `gateway serve` fronts when no upstream is configured.

It answers JSON, as a real RPC service behind the gateway would, echoing what it received and who
the gateway said was calling, so a first run shows the whole path working.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.errors import ApiError, Err

REGIONS = [
    {"RegionId": "cn-hangzhou", "LocalName": "华东1(杭州)"},
    {"RegionId": "cn-shanghai", "LocalName": "华东2(上海)"},
    {"RegionId": "ap-southeast-1", "LocalName": "Singapore"},
]
INSTANCES = {"i-demo-1": {"InstanceId": "i-demo-1", "Status": "Running", "InstanceType": "ecs.t6-c1m1.large"}}


def _describe_regions(params: dict[str, str]) -> dict[str, Any]:
    return {"Regions": {"Region": REGIONS}}


def _describe_instances(params: dict[str, str]) -> dict[str, Any]:
    wanted = [v for k, v in sorted(params.items()) if k.startswith("InstanceId.")] or list(INSTANCES)
    missing = [i for i in wanted if i not in INSTANCES]
    if missing:
        raise ApiError(Err.INSTANCE_NOT_FOUND)
    found = [INSTANCES[i] for i in wanted]
    return {"TotalCount": len(found), "Instances": {"Instance": found}}


def _create_order(params: dict[str, str]) -> dict[str, Any]:
    return {"OrderId": uuid.uuid4().hex[:16], "Amount": int(params.get("Amount", "0"))}


ACTIONS = {
    "DescribeRegions": _describe_regions,
    "DescribeInstances": _describe_instances,
    "CreateOrder": _create_order,
}


async def endpoint(request: Request) -> JSONResponse:
    ctx = request.scope.get("gateway")
    params: dict[str, str] = ctx.params if ctx is not None else dict(request.query_params)
    action = params.get("Action", "") if ctx is None else (ctx.action or "")
    handler = ACTIONS.get(action)
    if handler is None:
        raise ApiError(Err.INVALID_ACTION_NAME)
    result = handler(params)
    result["Echo"] = {
        "Action": action,
        "Parameters": {k: v for k, v in params.items() if k != "Signature"},
        "Caller": ctx.identity if ctx is not None else None,
    }
    return JSONResponse(result)


def create_demo_app(middleware: Sequence[Middleware] = ()) -> Starlette:
    """The demo service; the gateway goes in ``middleware`` (``Middleware(GatewayMiddleware, ...)``).

    Added the Starlette way, the gateway sits inside Starlette's ServerErrorMiddleware, so an
    ApiError raised by an endpoint reaches it instead of becoming a plain-text 500 first.
    """
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])], middleware=middleware)
