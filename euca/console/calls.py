"""Console actions as EC2 requests: Query-style parameters parsed against the operation's input
shape, the pipeline's authorization hook, then the action's handler, exactly as a signed request
would go. A user whose policies deny ``ec2:RunInstances`` cannot launch from the console either.

The console sits beside the API (line 5) and does not import it: ``create_app`` hands over the
hook, the handlers, the service model and the parser it uses itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from euca.core.errors import InvalidAction, UnauthorizedOperation
from euca.services.cloud import Cloud
from euca.services.common import Caller

Authorize = Callable[[Caller, str, dict[str, Any]], None]
Handler = Callable[[Cloud, Caller, dict[str, Any]], dict[str, Any]]
Parse = Callable[[Any, dict[str, str]], dict[str, Any]]


class Ec2Calls:
    def __init__(self, cloud: Cloud, authorize_hook: Authorize, actions: Mapping[str, Handler], model: Any,
                 parse: Parse, source_ip: Any) -> None:
        """``source_ip``: the pipeline's ContextVar for ``aws:SourceIp``."""
        self.cloud, self.authorize, self.actions = cloud, authorize_hook, actions
        self.model, self.parse, self.source_ip = model, parse, source_ip
        self._shapes: dict[str, Any] = {}

    def has(self, action: str) -> bool:
        return action in self.actions

    def __call__(self, caller: Caller, action: str, params: Mapping[str, str], source: str) -> dict[str, Any]:
        """The handler's result, or the ApiError the API would have answered with."""
        handler = self.actions.get(action)
        if handler is None:
            raise InvalidAction(f"The action {action} is not valid for this web service.")
        shape = self._shapes.get(action)
        if shape is None:
            shape = self._shapes[action] = self.model.operation_model(action).input_shape
        parsed = self.parse(shape, dict(params))
        token = self.source_ip.set(source)
        try:
            self.authorize(caller, action, parsed)
            return handler(self.cloud, caller, parsed)
        finally:
            self.source_ip.reset(token)

    def allowed(self, caller: Caller, action: str, resource: str, source: str) -> bool:
        """The policy engine's answer for a non-EC2 action the console does itself (``iam:CreateAccessKey``,
        ``s3:ListAllMyBuckets``), as the IAM and S3 endpoints ask it."""
        return self.cloud.accounts.allows(caller, action, (resource,), source)

    def require(self, caller: Caller, action: str, resource: str, source: str) -> None:
        if not self.allowed(caller, action, resource, source):
            raise UnauthorizedOperation(f"You are not authorized to perform {action}.")
