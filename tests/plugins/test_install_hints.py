"""Install hints: from a checkout (futurekit is not on PyPI), and only for what is missing.

With a CPU build of torch installed, a CUDA future must not be told to install the
torch extra it already has: it lacks a CUDA build of torch, or cuda-python and an
NVIDIA driver.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable

import pytest

from futurekit import BackendUnavailableError, Future
from futurekit.backends import _registry
from futurekit.backends._registry import install_hint, int_device_type

from .conftest import Install

pytestmark = pytest.mark.timeout(60)

torch = pytest.importorskip("torch")


def test_install_hint_says_how_to_install_from_a_checkout() -> None:
    assert install_hint("torch") == (
        "install the futurekit[torch] extra: pip install '.[torch]' from a futurekit checkout"
    )
    assert install_hint("torch", "cuda") == (
        "install the futurekit[torch] or futurekit[cuda] extra: "
        "pip install '.[torch]' or '.[cuda]' from a futurekit checkout"
    )


@pytest.mark.parametrize("extras", [(), ("",), ("Torch",), ("torch]",), (3,)])
def test_install_hint_validates(extras: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match="install_hint"):
        install_hint(*extras)  # type: ignore[arg-type]


@pytest.fixture
def cuda_machine(
    install: Install, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., BackendUnavailableError]:
    """What the cuda backends see: a torch build and version, cuda-python or not.

    Returns a function that sets the scene and returns the error of
    ``Future(devices=["cuda:0"])``.
    """
    from futurekit.backends.cuda import CudaPythonBackend

    install("futurekit-nothing", {})

    def scene(*, torch_version: str | None, cuda_python: bool) -> BackendUnavailableError:
        monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
        versions: dict[str, str | None] = {"torch": torch_version}
        for name, found in (("cuda-core", "1.2.2"), ("cuda-bindings", "13.0.0")):
            versions[name] = found if cuda_python else None
        reason = "no NVIDIA driver found" if cuda_python else "cuda-python is not installed"
        real_version = importlib.metadata.version

        def version(name: str) -> str:
            if name not in versions:
                return real_version(name)
            found = versions[name]
            if found is None:
                raise importlib.metadata.PackageNotFoundError(name)
            return found

        monkeypatch.setattr(importlib.metadata, "version", version)
        monkeypatch.setattr(CudaPythonBackend, "unavailable_reason", lambda self: reason)
        _registry.reset()  # forget what was looked up before the scene was set
        with pytest.raises(BackendUnavailableError) as info:
            Future(devices=["cuda:0"])
        return info.value

    return scene


def _never_reinstalls_torch(message: str) -> None:
    assert "pip install 'futurekit[" not in message  # futurekit is not on PyPI
    assert ".[torch]" not in message and "futurekit[torch]" not in message


def test_cpu_torch_and_cuda_python_without_driver(
    cuda_machine: Callable[..., BackendUnavailableError],
) -> None:
    message = str(cuda_machine(torch_version="2.13.0+cpu", cuda_python=True))
    # each backend is named with its plugin and distribution
    torch_backend = "backend 'torch' (plugin 'futurekit.backends.torch', distribution futurekit "
    cuda_backend = "backend 'cuda-python' (plugin 'futurekit.backends.cuda', distribution futurekit"
    assert torch_backend in message and cuda_backend in message
    assert "a CUDA build of torch instead of the CPU-only torch 2.13.0+cpu" in message
    assert "https://pytorch.org/get-started/locally/" in message
    assert "'cuda-python' needs an NVIDIA GPU with its driver (cuda-python is installed)" in (
        message
    )
    _never_reinstalls_torch(message)
    assert ".[cuda]" not in message


def test_cpu_torch_without_cuda_python(
    cuda_machine: Callable[..., BackendUnavailableError],
) -> None:
    message = str(cuda_machine(torch_version="2.13.0+cpu", cuda_python=False))
    assert "a CUDA build of torch instead of the CPU-only torch 2.13.0+cpu" in message
    assert (
        "'cuda-python' needs cuda-python and an NVIDIA driver (install the futurekit[cuda] "
        "extra: pip install '.[cuda]' from a futurekit checkout)"
    ) in message
    _never_reinstalls_torch(message)


def test_no_torch_at_all_suggests_the_extra(
    cuda_machine: Callable[..., BackendUnavailableError],
) -> None:
    message = str(cuda_machine(torch_version=None, cuda_python=True))
    assert "install the futurekit[torch] extra: pip install '.[torch]' from a futurekit" in message
    assert "pip install 'futurekit[" not in message


def test_int_device_hint_installs_from_a_checkout(
    install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "FUTUREKIT_DISABLE_PLUGINS", "futurekit.backends.torch,futurekit.backends.cuda"
    )
    install("futurekit-nothing", {})
    with pytest.raises(BackendUnavailableError) as info:
        int_device_type()
    message = str(info.value)
    assert "pip install '.[torch]' or '.[cuda]' from a futurekit checkout" in message
    assert "pip install 'futurekit[" not in message
