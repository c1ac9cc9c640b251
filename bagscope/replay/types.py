"""The message type system: from the log first, then a named typestore, then the user's files.

Definitions embedded in a log describe exactly what was recorded, so they win. Logs that carry
none (pre-Jazzy ``.db3``) fall back to a rosbags typestore chosen by name, extended with the
user's own ``.msg``/``.idl`` files. ROS1 and ROS2 define ``std_msgs/msg/Header`` differently, so
each serialization gets its own stores. Everything is built on first use: opening a log to read
its metadata never pays for parsing definitions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.replay.errors import DecodeError, ReplayError, UnknownTypeError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from rosbags.typesys.store import Typestore

    from bagscope.replay.storage.base import Serialization, TypeDefinition

    Typesdict = dict[str, tuple[list[object], list[tuple[str, tuple[object, object]]]]]

HEADER = "std_msgs/msg/Header"

# Short names users type -> rosbags `Stores` values (rosbags itself is imported only when a
# store is really built: reading stamps and the hot sensor types never needs it).
STORE_NAMES: Mapping[str, str] = {
    "noetic": "ros1_noetic",
    "dashing": "ros2_dashing",
    "eloquent": "ros2_eloquent",
    "foxy": "ros2_foxy",
    "galactic": "ros2_galactic",
    "humble": "ros2_humble",
    "iron": "ros2_iron",
    "jazzy": "ros2_jazzy",
    "kilted": "ros2_kilted",
    "lyrical": "ros2_lyrical",
    "latest": "latest",
}
_HEADER_SPELLINGS = frozenset({"Header", "std_msgs/Header", HEADER})
_SEPARATOR = "=" * 80
DEFAULT_STORES: Mapping[Serialization, str] = {"cdr": "humble", "ros1": "noetic"}


def resolve_store(name: str) -> tuple[str, str]:
    """Map a user's typestore name (``humble``, ``ros2_humble``, ``ROS2_HUMBLE``) to rosbags'."""
    key = name.strip().lower()
    for short, store in STORE_NAMES.items():
        if key in (short, store):
            return short, store
    choices = ", ".join(STORE_NAMES)
    msg = f"unknown typestore {name!r}; choose one of: {choices}"
    raise ReplayError(msg)


def _family(store: str) -> Serialization:
    return "ros1" if store.startswith("ros1") else "cdr"


def _typestore(store: str) -> Typestore:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores(store))


def header_first_in_text(text: str) -> bool:
    """Whether a ``.msg`` definition's first field is a Header, read from the text itself.

    The log carries its definitions as text; the first field line (comments, blank lines and
    constants skipped, before the first nested ``MSG:`` section) says it. Parsing that line is
    all a replay needs to read header stamps, where building a typestore costs milliseconds.
    """
    for raw_line in text.split(_SEPARATOR, 1)[0].splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if not line or "=" in line:
            continue
        return line.split()[0] in _HEADER_SPELLINGS
    return False


def _types_from_definition(definition: TypeDefinition) -> Typesdict:
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

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
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

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
        self._chosen: tuple[str, str] | None = resolve_store(typestore) if typestore else None
        self._user_types = load_msg_paths(msg_paths)
        self._log_stores: dict[Serialization, Typestore] = {}
        self._base_stores: dict[Serialization, Typestore] = {}
        self._resolved: dict[tuple[str, Serialization], Typestore | None] = {}
        self._header_first: dict[tuple[str, Serialization], bool] = {}
        self._parsed: dict[Serialization, Typesdict] = {}
        self._msg_texts: dict[tuple[str, Serialization], str] | None = None

    def add_definitions(self, definitions: Iterable[TypeDefinition]) -> None:
        """Add definitions found in the log (before the first decode)."""
        self._definitions.extend(definitions)
        self._log_stores.clear()
        self._resolved.clear()
        self._header_first.clear()
        self._parsed.clear()
        self._msg_texts = None

    def store_name(self, serialization: Serialization) -> str:
        """The fallback typestore's short name for this serialization."""
        if self._chosen and _family(self._chosen[1]) == serialization:
            return self._chosen[0]
        return DEFAULT_STORES[serialization]

    def _texts(self) -> dict[tuple[str, Serialization], str]:
        """The log's ``.msg`` definition texts by (type, serialization), first one wins."""
        if self._msg_texts is None:
            self._msg_texts = {}
            for d in self._definitions:
                if d.encoding == "msg":
                    self._msg_texts.setdefault((d.msgtype, d.serialization), d.text)
        return self._msg_texts

    def _log_types(self, serialization: Serialization) -> Typesdict:
        """The log's own definitions, parsed (not yet compiled into a typestore)."""
        types = self._parsed.get(serialization)
        if types is None:
            types = self._parsed[serialization] = {}
            for definition in self._definitions:
                if definition.serialization != serialization or definition.msgtype in types:
                    continue
                try:
                    found = _types_from_definition(definition)
                except Exception:  # rosbags' parsers raise several unrelated types
                    continue
                for name, value in found.items():
                    types.setdefault(name, value)
        return types

    def _log_store(self, serialization: Serialization) -> Typestore:
        store = self._log_stores.get(serialization)
        if store is None:
            store = _typestore("empty")
            _register(store, self._log_types(serialization))
            self._log_stores[serialization] = store
        return store

    def _base_store(self, serialization: Serialization) -> Typestore:
        store = self._base_stores.get(serialization)
        if store is None:
            store = _typestore(STORE_NAMES[self.store_name(serialization)])
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
            # The log's own text is enough: parsing definitions and registering (compiling) a
            # typestore is left to the first message that really needs deserialising.
            text = self._texts().get(key)
            if text is not None:
                known = header_first_in_text(text)
            else:
                parsed = self._log_types(serialization).get(msgtype)
                if parsed is not None:
                    fields: Any = parsed[1]
                else:
                    store = self.store_for(msgtype, serialization)
                    fields = store.fielddefs[msgtype][1] if store is not None else []
                known = bool(fields) and fields[0][1][1] == HEADER
            self._header_first[key] = known
        return known


def _register(store: Typestore, types: Typesdict) -> None:
    """Add ``types`` the store lacks; keep what it has (first definition wins)."""
    from rosbags.typesys import TypesysError

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


# ROS1 and ROS2 differ in ``std_msgs/Header`` only (``seq``): converting a log between them
# keeps every other definition as the log recorded it.
_ROS_HEADER = "std_msgs/msg/Header"


def ros2_store_for_ros1(ros1: Typestore) -> Typestore:
    """The log's ROS1 definitions with ROS2's ``std_msgs/Header`` (no ``seq``), as
    ``rosbags-convert`` builds it: ``ros1_to_cdr`` drops ``seq`` from every header."""
    from rosbags.typesys import Stores, get_typestore

    humble = get_typestore(Stores.ROS2_HUMBLE)
    store = get_typestore(Stores.EMPTY)
    types = {k: v for k, v in ros1.fielddefs.items() if k not in store.fielddefs}
    types[_ROS_HEADER] = humble.fielddefs[_ROS_HEADER]
    store.register(types)
    return store


def ros1_store_for_cdr(cdr: Typestore) -> Typestore:
    """The log's CDR definitions with ROS1's ``std_msgs/Header`` (``seq`` first): what the
    ROS1 definitions (and md5 sums) of converted messages are generated from."""
    from rosbags.typesys import Stores, get_typestore

    noetic = get_typestore(Stores.ROS1_NOETIC)
    store = get_typestore(Stores.EMPTY)
    types = {k: v for k, v in cdr.fielddefs.items() if k not in store.fielddefs}
    types[_ROS_HEADER] = noetic.fielddefs[_ROS_HEADER]
    store.register(types)
    return store
