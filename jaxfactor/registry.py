"""A tiny name -> factory registry with helpful errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from jaxfactor.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, field: str):
        self.field = field  # the config field the name comes from, for error messages
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.field} '{name}' is registered twice")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"unknown {self.field} '{name}'; allowed: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
