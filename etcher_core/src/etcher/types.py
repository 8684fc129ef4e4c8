"""The types of etcher's public API: what can be stored, what reads return.

>>> from etcher.types import Storable
>>> def save(db: DB, key: str, value: Storable) -> None:   # doctest: +SKIP
...     db[key] = value

``Storable`` is recursive: a set, bytes, a tuple or any other object,
anywhere inside a value, is a type error for mypy just as it is a
``TypeError`` at run time. Reading gives a :data:`Stored` value (a scalar, or
a handle for a nested dict or list); narrow it with ``isinstance`` (or
``cast``) before using it as one or the other. Materializing (``rd()``,
``rl.pop()``) gives :data:`Plain` data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, Union

if TYPE_CHECKING:
    from etcher._containers import RD, RL

_T_co = TypeVar("_T_co", covariant=True)

#: A dict key etcher stores: ``str`` or ``int`` (``bool`` is refused at run time).
Key: TypeAlias = str | int

#: A value stored as itself.
Scalar: TypeAlias = str | int | float | bool | None

#: What reading gives: a scalar, or a handle to a nested dict (RD) or list (RL).
Stored: TypeAlias = Union[Scalar, "RD", "RL"]


class ListLike(Protocol[_T_co]):
    """A ``list`` (or an :class:`~etcher.RL`) of ``_T_co``, read-only and covariant.

    A protocol rather than ``list[...]`` so that a ``list[str]`` is storable
    where ``list[Storable]`` is expected; ``append`` keeps tuples and bytes out.
    """

    def __iter__(self) -> Iterator[_T_co]: ...

    def __len__(self) -> int: ...

    def append(self, item: Any, /) -> None: ...


#: What can be stored: scalars, handles, and dicts/lists of storable values, to any depth.
Storable: TypeAlias = Union[
    Scalar,
    "RD",
    "RL",
    Mapping[str, "Storable"],
    Mapping[int, "Storable"],
    Mapping[str | int, "Storable"],
    list["Storable"],
    ListLike["Storable"],
]

#: A dict (or any mapping) that can be stored: str keys, int keys, or both.
StorableMapping: TypeAlias = (
    Mapping[str, Storable] | Mapping[int, Storable] | Mapping[str | int, Storable]
)

#: A materialized snapshot (``handle()``, ``pop()``): plain dicts, lists and scalars.
Plain: TypeAlias = Scalar | dict[Key, "Plain"] | list["Plain"]

__all__ = ["Key", "ListLike", "Plain", "Scalar", "Storable", "StorableMapping", "Stored"]
