"""Devices: the :class:`Device` record and the parsing of ``Future(devices=...)``."""

from __future__ import annotations

from ._errors import InvalidDeviceError

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

__all__ = ["Device", "DeviceLike", "parse_device", "parse_devices"]

#: Anything accepted as one entry of ``devices=``: an ``int`` index, a ``"type:index"``
#: string, or an object with ``.type`` and ``.index`` (``torch.device``, :class:`Device`).
if TYPE_CHECKING:
    DeviceLike = Any
else:
    DeviceLike = object


class Device:
    """A device: a type (``"cuda"``, ``"sim"`` ...) and a non-negative index.

    Immutable and hashable; devices sort by type, then index;
    ``str(Device("cuda", 0)) == "cuda:0"``. Like ``torch.device`` it has ``.type``
    and ``.index``. Devices are interned: ``Device("cuda", 0) is Device("cuda", 0)``
    (backends should return these objects from ``device_of``: the device hot path
    compares by identity first, by equality only when that fails).
    """

    __slots__ = ("_hash", "_key")
    _key: tuple[str, int]
    _hash: int

    def __new__(cls, type: str, index: int) -> Device:
        if type.__class__ is str and index.__class__ is int:
            found = _INTERNED.get((type, index))
            if found is not None and cls is Device:
                return found  # interned: equal devices are usually the same object
        if not (type.__class__ is str and type in _VALID_TYPES):
            _check_type(type)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"Device index must be an int, got {index!r}; e.g. Device({type!r}, 0)")
        if index < 0:
            raise InvalidDeviceError(f"Device index must not be negative, got {type}:{index}")
        key = (str(type), int(index))
        self = object.__new__(cls)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))
        if cls is Device and len(_INTERNED) < _MAX_INTERNED:
            self = _INTERNED.setdefault(key, self)
        return self

    @property
    def type(self) -> str:
        """The device type, e.g. ``"cuda"``."""
        return self._key[0]

    @property
    def index(self) -> int:
        """The device index (``>= 0``)."""
        return self._key[1]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Device is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Device is immutable")

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return (Device, self._key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Device):
            return self._key == other._key
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: Device) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return self._key < other._key

    def __le__(self, other: Device) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return self._key <= other._key

    def __gt__(self, other: Device) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return self._key > other._key

    def __ge__(self, other: Device) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return self._key >= other._key

    def __str__(self) -> str:
        return f"{self._key[0]}:{self._key[1]}"

    def __repr__(self) -> str:
        return f"Device({self._key[0]!r}, {self._key[1]})"


#: A device type: lower-case ASCII letter, then letters, digits, ``_``, ``.`` or ``-``
#: (the same rule as ``BackendSpec.device_type``).
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TYPE_CHARS = _LETTERS + "0123456789_.-"


def _is_type(text: str) -> bool:
    """``[a-z][a-z0-9_.-]*``, ASCII (string methods: ``re`` costs ~4 ms at import)."""
    return bool(text) and text[0] in _LETTERS and not text.strip(_TYPE_CHARS)


def _is_index(text: str) -> bool:
    """ASCII digits, no sign, no leading zero."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")


#: Device types already validated (bounded), so that building a Device stays cheap.
_VALID_TYPES: set[str] = set()
_MAX_CACHED_TYPES = 256
#: Interned devices: ``Device("cuda", 0) is Device("cuda", 0)`` (bounded), so that the
#: device hot path compares devices by identity first.
_INTERNED: dict[tuple[str, int], Device] = {}
_MAX_INTERNED = 4096


def _check_type(kind: object) -> None:
    """Validate a device type; remember it when valid.

    Raises:
        TypeError: ``kind`` is not a str.
        InvalidDeviceError: ``kind`` is not a lower-case device type name.
    """
    if not isinstance(kind, str):
        raise TypeError(f"Device type must be a str such as 'cuda', got {kind!r}")
    if not _is_type(kind):
        if ":" in kind:
            head, _, tail = kind.partition(":")
            example = f"Device({head!r}, {tail})" if tail.isascii() and tail.isdigit() else ""
            raise InvalidDeviceError(
                f"Device type {kind!r} contains ':': Device() takes the type and the index "
                f"separately{', e.g. ' + example if example else ''}"
            )
        raise InvalidDeviceError(
            f"Invalid device type {kind!r}: expected a lower-case name such as 'cuda' or "
            "'sim' (ASCII letters, digits, '_', '.' or '-', starting with a letter, no spaces)"
        )
    if len(_VALID_TYPES) < _MAX_CACHED_TYPES:
        _VALID_TYPES.add(kind)


def _parse_str(text: str) -> tuple[str, int | None]:
    kind, sep, idx = text.partition(":")
    if not _is_type(kind):
        if kind != kind.strip() or idx != idx.strip():
            why = "it has spaces around it"
        elif not kind:
            why = "the device type is empty"
        elif kind.lower() != kind and _is_type(kind.lower()):
            why = f"device types are lower case (did you mean {text.lower()!r}?)"
        else:
            why = "the type must be ASCII letters, digits, '_', '.' or '-', starting with a letter"
        raise InvalidDeviceError(
            f"Invalid device string {text!r}: {why}; expected 'type' or 'type:index', e.g. 'cuda:0'"
        )
    if not sep:
        return kind, None
    if not _is_index(idx):
        if idx.startswith("-") and idx[1:].isascii() and idx[1:].isdigit():
            raise InvalidDeviceError(f"Device index must not be negative, got {text!r}")
        if idx.isascii() and idx.isdigit():
            why = f"the index has a leading zero (write '{kind}:{int(idx)}')"
        elif ":" in idx:
            why = "it has more than one ':'"
        elif not idx:
            why = "the index after ':' is empty"
        else:
            why = "the index after ':' must be ASCII digits only (no sign, space or '_')"
        raise InvalidDeviceError(
            f"Invalid device string {text!r}: {why}; expected 'type' or 'type:index', e.g. 'cuda:0'"
        )
    return kind, int(idx)


def parse_device(
    obj: DeviceLike, int_type: Callable[[], str] | None = None
) -> tuple[str, int | None]:
    """Turn one ``devices=`` entry into ``(type, index or None)``.

    Args:
        obj: an ``int``, a ``"type[:index]"`` string, or an object with ``.type``
            and ``.index`` attributes.
        int_type: called to learn which device type a bare ``int`` means.

    Strings are strict, like ``torch.device``: a lower-case ASCII type, then
    optionally ``:`` and ASCII digits without sign, spaces, ``_`` or leading zeros.

    Raises:
        TypeError: ``obj`` is not a device, or its index is not an int.
        InvalidDeviceError: the index is negative, the string is malformed or the
            type is not a lower-case device type name.
    """
    if isinstance(obj, bool):
        raise TypeError(f"Expected a device (int, 'type:index' str or device object), got {obj!r}")
    if isinstance(obj, int):
        if obj < 0:
            raise InvalidDeviceError(f"Device index must not be negative, got {obj}")
        if int_type is None:
            raise TypeError("An int device needs an accelerator type to resolve against")
        return int_type(), obj
    if isinstance(obj, str):
        return _parse_str(obj)
    kind = getattr(obj, "type", None)
    if isinstance(kind, str) and hasattr(obj, "index"):
        if kind not in _VALID_TYPES:
            _check_type(kind)
        index = obj.index
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise TypeError(f"Device {obj!r} has a non-int index {index!r}")
        if index is not None and index < 0:
            raise InvalidDeviceError(f"Device index must not be negative, got {obj!r}")
        return kind, index
    raise TypeError(
        f"Expected a device (int, 'type:index' str, or an object with .type and .index "
        f"such as torch.device), got {type(obj).__name__}: {obj!r}"
    )


def _show(kind: str, index: int | None) -> str:
    return kind if index is None else f"{kind}:{index}"


def parse_devices(
    devices: Iterable[DeviceLike] | None, int_type: Callable[[], str] | None = None
) -> tuple[Device, ...]:
    """Normalise ``devices=`` into a sorted, de-duplicated tuple of :class:`Device`.

    ``None``, empty sequences and CPU devices (``"cpu"``, ``"cpu:N"``) give ``()``:
    a CPU future. Otherwise every entry must have the same type and an index.

    Raises:
        TypeError: ``devices`` is not a sequence, or an entry is not a device.
        ValueError: mixed device types, or a non-CPU device without an index
            (torch's messages).
        InvalidDeviceError: a negative index or a malformed string.
    """
    if devices is None:
        return ()
    if isinstance(devices, (str, bytes, int)) or hasattr(devices, "type"):
        raise TypeError(
            f"devices must be a list or tuple of devices, got {type(devices).__name__} "
            f"{devices!r}; did you mean devices=[{devices!r}]?"
        )
    try:
        entries = list(devices)
    except TypeError:
        raise TypeError(
            f"devices must be a list or tuple of devices, got {type(devices).__name__}"
        ) from None
    if not entries:
        return ()
    parsed = [parse_device(e, int_type) for e in entries]
    first_kind, first_index = parsed[0]
    for kind, index in parsed[1:]:
        if kind != first_kind:
            raise InvalidDeviceError(
                "Expected all devices to be of the same type, but got a mismatch between "
                f"{_show(first_kind, first_index)} and {_show(kind, index)}"
            )
    if first_kind == "cpu":
        return ()
    for kind, index in parsed:
        if index is None:
            raise InvalidDeviceError(f"Expected devices to have indices, got {kind}")
    return tuple(sorted({Device(k, i) for k, i in parsed if i is not None}))
