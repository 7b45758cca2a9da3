"""Parsing of ``Future(devices=...)`` and the :class:`futurekit.Device` record."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from futurekit import BackendUnavailableError, Device, Future, InvalidDeviceError
from futurekit.core._devices import parse_devices

pytestmark = pytest.mark.timeout(60)


# -- Device ---------------------------------------------------------------------


def test_device_str_repr_and_attributes() -> None:
    d = Device("cuda", 0)
    assert str(d) == "cuda:0"
    assert repr(d) == "Device('cuda', 0)"
    assert d.type == "cuda" and d.index == 0


def test_device_is_frozen_hashable_and_ordered() -> None:
    d = Device("cuda", 1)
    with pytest.raises(AttributeError):
        d.index = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        d.type = "x"  # type: ignore[misc]
    assert d == Device("cuda", 1) and hash(d) == hash(Device("cuda", 1))
    assert d != Device("cuda", 2) and d != "cuda:1"
    assert sorted([Device("b", 0), Device("a", 3), Device("a", 1)]) == [
        Device("a", 1),
        Device("a", 3),
        Device("b", 0),
    ]
    assert pickle.loads(pickle.dumps(d)) == d
    assert copy.deepcopy(d) == d


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        (("cuda", -1), InvalidDeviceError),
        (("", 0), InvalidDeviceError),
        (("CUDA", 0), InvalidDeviceError),
        ((" cuda", 0), InvalidDeviceError),
        (("cu da", 0), InvalidDeviceError),
        (("1cuda", 0), InvalidDeviceError),
        (("cuda", "0"), TypeError),
        (("cuda", True), TypeError),
        (("cuda", 1.0), TypeError),
        (("cuda", None), TypeError),
        ((3, 0), TypeError),
        ((["cuda"], 0), TypeError),
    ],
)
def test_device_validates(args: tuple[Any, Any], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Device(*args)


def test_device_type_with_an_index_is_refused() -> None:
    # it used to print as "sim:0:0"
    with pytest.raises(InvalidDeviceError, match="takes the type and the index separately") as e:
        Device("sim:0", 0)
    assert "Device('sim', 0)" in str(e.value)
    with pytest.raises(InvalidDeviceError, match="contains ':'"):
        Device("sim:", 0)


def test_device_accepts_every_type_a_backend_may_declare() -> None:
    for kind in ("cuda", "privateuseone", "my_dev", "my-dev", "dev.v2", "x1"):
        assert str(Device(kind, 2)) == f"{kind}:2"


# -- CPU futures --------------------------------------------------------------------


@pytest.mark.parametrize(
    "devices",
    [None, [], (), ["cpu"], ["cpu:0"], ["cpu:3"], ("cpu", "cpu:1"), [Device("cpu", 0)]],
    ids=repr,
)
def test_cpu_devices_make_a_cpu_future(devices: Any) -> None:
    f: Future[int] = Future(devices=devices)
    assert f.devices == ()
    f.set_result(1)
    assert f.wait() == 1
    assert f.then(lambda x: x.value() + 1).devices == ()


def test_torch_cpu_device_objects() -> None:
    torch = pytest.importorskip("torch")
    assert Future(devices=[torch.device("cpu")]).devices == ()
    assert Future(devices=[torch.device("cpu", 2)]).devices == ()


def test_devices_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Future(["cpu"])  # type: ignore[misc]


# -- accelerator devices (a fake backend) ----------------------------------------------


def test_strings_are_sorted_and_deduplicated(isolated_registry: Callable[..., str]) -> None:
    isolated_registry("fakeacc")
    f: Future[int] = Future(devices=["fakeacc:2", "fakeacc:0", "fakeacc:2", "fakeacc:1"])
    assert f.devices == (Device("fakeacc", 0), Device("fakeacc", 1), Device("fakeacc", 2))
    assert all(type(d) is Device for d in f.devices)
    assert isinstance(f.devices, tuple)
    child = f.then(lambda x: x.value())
    assert child.devices == f.devices
    f.set_result(7)
    assert child.wait() == 7


def test_device_objects_and_mixed_forms(isolated_registry: Callable[..., str]) -> None:
    isolated_registry("fakeacc")
    duck = SimpleNamespace(type="fakeacc", index=3)
    f: Future[int] = Future(devices=(duck, Device("fakeacc", 1), "fakeacc:3", 1))
    assert f.devices == (Device("fakeacc", 1), Device("fakeacc", 3))


def test_ints_mean_the_one_accelerator(isolated_registry: Callable[..., str]) -> None:
    isolated_registry("fakeacc")
    isolated_registry("simlike", testing=True)  # testing backends never count
    f: Future[int] = Future(devices=[1, 0, 1])
    assert f.devices == (Device("fakeacc", 0), Device("fakeacc", 1))


def test_int_without_accelerator(isolated_registry: Callable[..., str]) -> None:
    isolated_registry("simlike", testing=True)
    with pytest.raises(BackendUnavailableError, match="no accelerator backend is available"):
        Future(devices=[0])
    # testing backends stay usable by name
    assert Future(devices=["simlike:0"]).devices == (Device("simlike", 0),)


def test_int_with_several_accelerators(isolated_registry: Callable[..., str]) -> None:
    isolated_registry("fakeacc")
    isolated_registry("otheracc")
    with pytest.raises(BackendUnavailableError, match="ambiguous") as info:
        Future(devices=[0])
    assert "fakeacc" in str(info.value) and "otheracc" in str(info.value)


def test_torch_device_objects(isolated_registry: Callable[..., str]) -> None:
    torch = pytest.importorskip("torch")
    isolated_registry("meta")  # a torch device type that needs no hardware
    f: Future[int] = Future(devices=[torch.device("meta", 1), torch.device("meta", 0)])
    assert f.devices == (Device("meta", 0), Device("meta", 1))
    with pytest.raises(ValueError, match="Expected devices to have indices, got meta"):
        Future(devices=[torch.device("meta")])


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (["cpu", "cuda:0"], "mismatch between cpu and cuda:0"),
        (["cuda:0", "cpu"], "mismatch between cuda:0 and cpu"),
        (["cuda:1", "xpu:0"], "mismatch between cuda:1 and xpu:0"),
        ([Device("cuda", 0), "cuda:1", "hip:0"], "mismatch between cuda:0 and hip:0"),
    ],
)
def test_mixed_types_use_torch_message(devices: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match="Expected all devices to be of the same type") as info:
        Future(devices=devices)
    assert str(info.value) == (f"Expected all devices to be of the same type, but got a {message}")


@pytest.mark.parametrize("devices", [["cuda"], ["cuda", "cuda"], ["meta"], ["cuda:0", "cuda"]])
def test_missing_index_uses_torch_message(devices: list[str]) -> None:
    kind = "meta" if "meta" in devices else "cuda"
    with pytest.raises(ValueError) as info:
        Future(devices=devices)
    assert str(info.value) == f"Expected devices to have indices, got {kind}"


@pytest.mark.parametrize("devices", [[-1], ["cuda:-1"], [SimpleNamespace(type="cuda", index=-2)]])
def test_negative_index(devices: list[Any]) -> None:
    with pytest.raises(InvalidDeviceError, match="Device index must not be negative") as info:
        Future(devices=devices)
    assert isinstance(info.value, RuntimeError)  # torch raises RuntimeError here


def test_unknown_type_names_known_types(isolated_registry: Callable[..., str]) -> None:
    isolated_registry("fakeacc")
    with pytest.raises(BackendUnavailableError) as info:
        Future(devices=["foo:0"])
    msg = str(info.value)
    assert "'foo'" in msg
    assert "Known device types" in msg and "fakeacc" in msg and "cpu" in msg


def test_unknown_well_known_type_names_the_extra(isolated_registry: Callable[..., str]) -> None:
    # the torch plugin is disabled here, so nothing serves xpu: the extra is suggested
    with pytest.raises(BackendUnavailableError) as info:
        Future(devices=["xpu:0"])
    msg = str(info.value)
    assert "'xpu'" in msg and "futurekit[torch]" in msg


def test_unavailable_backend_says_why() -> None:
    # torch's CPU build has a cuda backend that is not available on this machine
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailableError) as info:
        Future(devices=["cuda:0"])
    assert "cuda" in str(info.value)


@pytest.mark.parametrize(
    "devices",
    [[object()], [1.5], [None], [True], [b"cuda:0"], [["cuda:0"]]],
    ids=["object", "float", "None", "bool", "bytes", "list"],
)
def test_non_device_objects(devices: list[Any]) -> None:
    with pytest.raises(TypeError, match="Expected a device"):
        Future(devices=devices)


@pytest.mark.parametrize("devices", ["cuda:0", 0, Device("cuda", 0), 3.0])
def test_devices_must_be_a_sequence(devices: Any) -> None:
    with pytest.raises(TypeError, match="devices must be a list or tuple"):
        Future(devices=devices)


@pytest.mark.parametrize("text", ["cuda:x", ":0", "cu da:0", "cuda:0:1", ""])
def test_malformed_strings(text: str) -> None:
    with pytest.raises(InvalidDeviceError, match="Invalid device string"):
        Future(devices=[text])


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sim:1_0", "ASCII digits only"),  # int() would read 10
        ("sim:\u0663", "ASCII digits only"),  # int() would read 3 (ARABIC-INDIC THREE)
        ("sim:\uff11", "ASCII digits only"),  # FULLWIDTH DIGIT ONE
        ("sim:+1", "ASCII digits only"),
        ("sim: 1", "ASCII digits only"),
        ("sim:1 ", "ASCII digits only"),
        ("sim:1\n", "ASCII digits only"),
        ("sim:0x1", "ASCII digits only"),
        ("sim:1.0", "ASCII digits only"),
        ("sim:-\u0663", "ASCII digits only"),
        ("sim:01", "leading zero \\(write 'sim:1'\\)"),
        ("sim:00", "leading zero \\(write 'sim:0'\\)"),
        ("sim:", "the index after ':' is empty"),
        ("sim:0:0", "more than one ':'"),
        (" sim:0", "spaces around it"),
        ("sim :0", "spaces around it"),
        ("\tsim", "spaces around it"),
        ("SIM:0", "lower case \\(did you mean 'sim:0'\\?\\)"),
        ("Sim", "lower case"),
        (":0", "the device type is empty"),
        ("", "the device type is empty"),
        ("1sim:0", "starting with a letter"),
        ("s\u0131m:0", "ASCII letters"),  # dotless i
        ("sim/0", "ASCII letters"),
    ],
)
def test_strict_strings_name_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(InvalidDeviceError, match=f"Invalid device string .*{why}") as info:
        Future(devices=[text])
    assert repr(text) in str(info.value)  # the message shows exactly what was passed
    assert "e.g. 'cuda:0'" in str(info.value)


@pytest.mark.parametrize("text", ["sim:-1", "sim:-10"])
def test_negative_string_index_says_negative(text: str) -> None:
    with pytest.raises(InvalidDeviceError, match="must not be negative"):
        Future(devices=[text])


def test_strict_parser_accepts_plain_forms() -> None:
    parsed = parse_devices(["acc:10", "acc:0", "acc:3", Device("acc", 3)])
    assert parsed == (Device("acc", 0), Device("acc", 3), Device("acc", 10))
    assert parse_devices(["my-dev.v2_x:7"]) == (Device("my-dev.v2_x", 7),)


@pytest.mark.parametrize(
    ("duck", "exc"),
    [
        (SimpleNamespace(type="CUDA", index=0), InvalidDeviceError),
        (SimpleNamespace(type="cuda:0", index=0), InvalidDeviceError),
        (SimpleNamespace(type="", index=0), InvalidDeviceError),
        (SimpleNamespace(type="cuda", index=True), TypeError),
        (SimpleNamespace(type="cuda", index="0"), TypeError),
        (SimpleNamespace(type="cuda", index=1.0), TypeError),
    ],
)
def test_device_objects_are_validated(duck: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        Future(devices=[duck])


@pytest.mark.parametrize("value", [True, False])
def test_bools_are_not_indices(value: bool) -> None:
    with pytest.raises(TypeError, match="Expected a device"):
        Future(devices=[value])


def test_errors_are_raised_before_any_backend_is_touched(
    isolated_registry: Callable[..., str],
) -> None:
    with pytest.raises(ValueError, match="mismatch"):
        Future(devices=["nosuch:0", "cpu:0"])
    with pytest.raises(ValueError, match="indices"):
        Future(devices=["nosuch"])


# -- the string rules, without ``re`` at import: the same as the regular expressions ------
_TYPE_RE = r"[a-z][a-z0-9_.-]*\Z"
_INDEX_RE = r"(?:0|[1-9][0-9]*)\Z"


def test_type_and_index_rules_match_their_regular_expressions() -> None:
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from futurekit.core._devices import _is_index, _is_type

    alphabet = st.sampled_from(list("az09_.-AZ:é٣ \n+x1"))

    @settings(max_examples=400, deadline=None)
    @given(st.text(alphabet, max_size=6))
    def check(text: str) -> None:
        assert _is_type(text) == bool(re.match(_TYPE_RE, text, re.ASCII))
        assert _is_index(text) == bool(re.match(_INDEX_RE, text, re.ASCII))

    check()
