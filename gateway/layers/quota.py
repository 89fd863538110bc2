from __future__ import annotations

from gateway.context import RequestContext
from gateway.memo import PerObjects
from gateway.policy import AccessKey, ApiSpec, Policy
from gateway.stores import Take


class QuotaLayer:
    """Lists the flow-control and quota takes this call needs; `AdmitLayer` takes them atomically.

    Flow control protects the service whoever calls (global and per API); quotas are the caller's
    allowance, per access key or per account as the policy's ``quota_scope`` says, overall and,
    where an API declares one, for that API too (a call must fit both).
    """

    def __init__(self, policy: Policy) -> None:
        self.global_flow = Take("flow", "flow:*", policy.flow) if policy.flow else None
        self.per_account = policy.quota_scope == "account"
        self._takes_of: PerObjects[tuple[Take, ...]] = PerObjects()  # fixed by the policy: built once

    def check(self, ctx: RequestContext) -> None:
        api, key = ctx.api, ctx.key
        if api is None or key is None:
            return
        takes = self._takes_of.get(api, key)
        ctx.takes = takes if takes is not None else self._takes_of.put(self._takes(api, key), api, key)

    def _takes(self, api: ApiSpec, key: AccessKey) -> tuple[Take, ...]:
        takes = []
        if self.global_flow is not None:
            takes.append(self.global_flow)
        if api.flow is not None:
            takes.append(Take("flow", f"flow:{api.version}:{api.action}", api.flow))
        owner = "account" if self.per_account else key.id
        if key.quota is not None:
            takes.append(Take("quota", f"quota:{owner}", key.quota))
        if api.quota is not None:
            takes.append(Take("quota", f"quota:{owner}:{api.version}:{api.action}", api.quota))
        return tuple(takes)
