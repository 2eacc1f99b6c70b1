from typing import Any, TypeVar

T = TypeVar("T", bound=tuple[Any, ...])

def untracked(t: T) -> T: ...
