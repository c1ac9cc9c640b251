"""The message type system: from the log first, then a named typestore, then the user's files.

Definitions embedded in a log describe exactly what was recorded, so they win. Logs that carry
none (pre-Jazzy ``.db3``) fall back to a rosbags typestore chosen by name, extended with the
user's own ``.msg``/``.idl`` files. ROS1 and ROS2 define ``std_msgs/msg/Header`` differently, so
each serialization gets its own stores. Everything is built on first use: opening a log to read
its metadata never pays for parsing definitions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rosbags.typesys import (
    Stores,
    TypesysError,
    get_types_from_idl,
    get_types_from_msg,
    get_typestore,
)

from bagscope.replay.errors import DecodeError, ReplayError, UnknownTypeError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from rosbags.typesys.store import Typestore

    from bagscope.replay.storage.base import Serialization, TypeDefinition

    Typesdict = dict[str, tuple[list[object], list[tuple[str, tuple[object, object]]]]]

HEADER = "std_msgs/msg/Header"

STORE_NAMES: Mapping[str, Stores] = {
    "noetic": Stores.ROS1_NOETIC,
    "dashing": Stores.ROS2_DASHING,
    "eloquent": Stores.ROS2_ELOQUENT,
    "foxy": Stores.ROS2_FOXY,
    "galactic": Stores.ROS2_GALACTIC,
    "humble": Stores.ROS2_HUMBLE,
    "iron": Stores.ROS2_IRON,
    "jazzy": Stores.ROS2_JAZZY,
    "kilted": Stores.ROS2_KILTED,
    "lyrical": Stores.ROS2_LYRICAL,
    "latest": Stores.LATEST,
}
DEFAULT_STORES: Mapping[Serialization, str] = {"cdr": "humble", "ros1": "noetic"}


def resolve_store(name: str) -> tuple[str, Stores]:
    """Map a user's typestore name (``humble``, ``ros2_humble``, ``ROS2_HUMBLE``) to rosbags'."""
    key = name.strip().lower()
    for short, store in STORE_NAMES.items():
        if key in (short, store.value):
            return short, store
    choices = ", ".join(STORE_NAMES)
    msg = f"unknown typestore {name!r}; choose one of: {choices}"
    raise ReplayError(msg)


def _family(store: Stores) -> Serialization:
    return "ros1" if store.value.startswith("ros1") else "cdr"


def _types_from_definition(definition: TypeDefinition) -> Typesdict:
    if definition.encoding == "msg":
        return dict(get_types_from_msg(definition.text, definition.msgtype))  # type: ignore[arg-type]
    sep = "=" * 80 + "\n"
    if not definition.text.startswith(f"{sep}IDL: "):
        return dict(get_types_from_idl(definition.text))  # type: ignore[arg-type]
    types: Typesdict = {}
    for part in definition.text.split(sep)[1:]:
        _, idl = part.split("\n", 1)
        types.update(get_types_from_idl(idl))  # type: ignore[arg-type]
    return types


def load_msg_paths(msg_paths: Iterable[Path]) -> Typesdict:
    """Parse every ``.msg``/``.idl`` below the given directories (type name from the path)."""
    types: Typesdict = {}
    for root in msg_paths:
        root_path = Path(root)
        if not root_path.is_dir():
            msg = f"message path {root_path} is not a directory"
            raise ReplayError(msg)
        for file in sorted(root_path.rglob("*")):
            if file.suffix not in (".msg", ".idl") or not file.is_file():
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
            try:
                if file.suffix == ".idl":
                    found = get_types_from_idl(text)
                else:
                    pkg = file.parent.parent.name if file.parent.name == "msg" else file.parent.name
                    found = get_types_from_msg(text, f"{pkg}/msg/{file.stem}")
            except Exception as err:  # rosbags' parsers raise several unrelated types
                msg = f"cannot parse message definition {file}: {err}"
                raise ReplayError(msg) from err
            types.update(found)  # type: ignore[arg-type]
    return types


class MessageTypes:
    """Finds the definition for each (type, serialization) and decodes payloads with it."""

    def __init__(
        self,
        definitions: Sequence[TypeDefinition],
        *,
        typestore: str | None = None,
        msg_paths: Sequence[Path] = (),
    ) -> None:
        self._definitions = list(definitions)
        self._chosen: tuple[str, Stores] | None = resolve_store(typestore) if typestore else None
        self._user_types = load_msg_paths(msg_paths)
        self._log_stores: dict[Serialization, Typestore] = {}
        self._base_stores: dict[Serialization, Typestore] = {}
        self._resolved: dict[tuple[str, Serialization], Typestore | None] = {}
        self._header_first: dict[tuple[str, Serialization], bool] = {}

    def add_definitions(self, definitions: Iterable[TypeDefinition]) -> None:
        """Add definitions found in the log (before the first decode)."""
        self._definitions.extend(definitions)
        self._log_stores.clear()
        self._resolved.clear()
        self._header_first.clear()

    def store_name(self, serialization: Serialization) -> str:
        """The fallback typestore's short name for this serialization."""
        if self._chosen and _family(self._chosen[1]) == serialization:
            return self._chosen[0]
        return DEFAULT_STORES[serialization]

    def _log_store(self, serialization: Serialization) -> Typestore:
        store = self._log_stores.get(serialization)
        if store is None:
            store = get_typestore(Stores.EMPTY)
            types: Typesdict = {}
            for definition in self._definitions:
                if definition.serialization != serialization or definition.msgtype in types:
                    continue
                try:
                    found = _types_from_definition(definition)
                except Exception:
                    continue
                for name, value in found.items():
                    types.setdefault(name, value)
            _register(store, types)
            self._log_stores[serialization] = store
        return store

    def _base_store(self, serialization: Serialization) -> Typestore:
        store = self._base_stores.get(serialization)
        if store is None:
            store = get_typestore(STORE_NAMES[self.store_name(serialization)])
            _register(store, self._user_types)
            self._base_stores[serialization] = store
        return store

    def store_for(self, msgtype: str, serialization: Serialization) -> Typestore | None:
        """The store that defines ``msgtype`` for this serialization, or None.

        The fallback store is only built when the log's own definitions lack the type: building
        a full ROS distribution's store costs a few hundred milliseconds.
        """
        key = (msgtype, serialization)
        if key in self._resolved:
            return self._resolved[key]
        found: Typestore | None = None
        for pick in (self._log_store, self._base_store):
            store = pick(serialization)
            if msgtype in store.fielddefs:
                found = store
                break
        self._resolved[key] = found
        return found

    def deserialize(
        self,
        data: bytes | memoryview,
        msgtype: str,
        serialization: Serialization,
        *,
        topic: str | None = None,
    ) -> object:
        """Decode ``data``; an unknown type says how to supply its definition."""
        store = self.store_for(msgtype, serialization)
        if store is None:
            where = f" on {topic}" if topic else ""
            msg = (
                f"message type {msgtype!r}{where} has no definition in the log or the "
                f"{self.store_name(serialization)!r} typestore; pass --msg-path DIR with its "
                ".msg/.idl files"
            )
            raise UnknownTypeError(msg)
        try:
            if serialization == "ros1":
                return store.deserialize_ros1(data, msgtype)
            return store.deserialize_cdr(data, msgtype)
        except UnknownTypeError:
            raise
        except Exception as err:  # generated deserializers raise struct/index/unicode errors
            where = f" on {topic}" if topic else ""
            msg = f"cannot decode {msgtype!r}{where} ({serialization}): {err}"
            raise DecodeError(msg) from err

    def starts_with_header(self, msgtype: str, serialization: Serialization) -> bool:
        """Whether the first field of ``msgtype`` is a ``std_msgs/msg/Header``.

        Then ``header.stamp`` sits at payload bytes 4..12 in both CDR and ROS1 encodings, so
        stamps can be read with :func:`bagscope.replay.storage.stamps.header_stamp_ns` without
        decoding the message.
        """
        key = (msgtype, serialization)
        known = self._header_first.get(key)
        if known is None:
            store = self.store_for(msgtype, serialization)
            fields = store.fielddefs[msgtype][1] if store is not None else []
            known = self._header_first[key] = bool(fields) and fields[0][1][1] == HEADER
        return known


def _register(store: Typestore, types: Typesdict) -> None:
    """Add ``types`` the store lacks; keep what it has (first definition wins)."""
    new = {k: v for k, v in types.items() if k not in store.fielddefs}
    if not new:
        return
    try:
        store.register(new)  # type: ignore[arg-type]
    except (TypesysError, NameError, KeyError, SyntaxError):
        # One bad or incomplete definition must not hide all the others: add them one by one.
        for name, value in new.items():
            try:
                store.register({name: value})  # type: ignore[dict-item]
            except (TypesysError, NameError, KeyError, SyntaxError):
                continue
