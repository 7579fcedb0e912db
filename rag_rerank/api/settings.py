"""What every settings object shares (:class:`RerankerOptions`, :class:`ServerOptions`,
:class:`TrainingOptions`): fields declared with their help text, listed by name, changed by
keyword with unknown names refused."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

from ..errors import InvalidInputTypeError

__all__ = ["Settings", "setting"]

_S = TypeVar("_S", bound="Settings")


def setting(default: Any, help: str, **metadata: Any) -> Any:
    """A settings field: its ``default`` and its one-line ``help`` (for the docs and the
    generated command-line flags), plus any other ``metadata``."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


class Settings:
    """Base of the frozen settings dataclasses: :meth:`names`, :meth:`help`, :meth:`from_kwargs`,
    :meth:`replace` and :meth:`to_dict`, written once. A subclass's ``__post_init__`` checks its
    values; :meth:`unknown` says what an unknown name raises."""

    kind: ClassVar[str] = "setting"
    """What one field is called in messages ("reranker option", "server setting", ...)."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every field's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def help(cls, name: str) -> str:
        """The one-line description of field ``name``."""
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return str(fields[name].metadata["help"])

    @classmethod
    def unknown(cls, name: str) -> Exception:
        """The error for ``name``, which is not a field (the subclass's error type)."""
        return InvalidInputTypeError(
            name, f"is not a {cls.kind}; the {cls.kind.split()[-1]}s are: {', '.join(cls.names())}"
        )

    @classmethod
    def from_kwargs(cls: type[_S], base: _S | None = None, **changes: Any) -> _S:
        """``base`` (default: all defaults) with ``changes`` applied, checked like the
        constructor's arguments; an unknown name raises :meth:`unknown`'s error."""
        unknown = sorted(set(changes) - set(cls.names()))
        if unknown:
            raise cls.unknown(unknown[0])
        if base is not None and not isinstance(base, cls):
            raise InvalidInputTypeError(
                "options", f"must be a {cls.__name__} or None, got {type(base).__name__}"
            )
        return dataclasses.replace(base or cls(), **changes)  # type: ignore[type-var]

    def replace(self: _S, **changes: Any) -> _S:
        """A copy with ``changes`` applied (checked like the constructor's arguments)."""
        return type(self).from_kwargs(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name."""
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]
