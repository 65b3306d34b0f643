"""Device strings: auto/cpu/cuda/cuda:N/mps, present devices listed, absent ones refused with a reason."""
from types import SimpleNamespace

import pytest
import torch

from cnnviz.core.run import devices
from cnnviz.core.run.faults import DeviceError, EngineError


def test_cpu_and_auto_resolve_here():
    assert devices.resolve("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if devices._mps_available() else "cpu")
    assert devices.resolve("auto").type == expected
    assert devices.resolve(None).type == expected
    assert devices.resolve(" cpu ") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:-1", "cuda:x", "cpu:0", "mps:1", "CUDA", "", "cuda 0",
                                  "cuda:0:1"])
def test_malformed_strings_are_refused(spec):
    with pytest.raises(DeviceError, match="expected auto, cpu, cuda, cuda:N or mps"):
        devices.resolve(spec)


def test_device_error_is_an_engine_error_with_its_kind():
    with pytest.raises(EngineError) as info:
        devices.resolve("tpu")
    assert info.value.kind == "device"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_cuda_is_an_error_never_a_fallback():
    for spec in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(DeviceError) as info:
            devices.resolve(spec)
        message = str(info.value)
        assert message.startswith(f"{spec} was asked for but this machine has no CUDA device")
        if torch.version.cuda is None:
            assert f"torch {torch.__version__} is a CPU-only build" in message


@pytest.mark.skipif(devices._mps_available(), reason="this machine has MPS")
def test_absent_mps_is_an_error():
    with pytest.raises(DeviceError, match="mps was asked for but this machine has no MPS device"):
        devices.resolve("mps")


def _fake_cuda(monkeypatch, count):
    props = SimpleNamespace(name="NVIDIA Fake 80GB", total_memory=80 * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)


def test_cuda_index_out_of_range_names_what_exists(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    with pytest.raises(DeviceError, match=r"^cuda:3 was asked for but only cuda:0..cuda:1 exist$"):
        devices.resolve("cuda:3")
    assert devices.resolve("cuda:1") == torch.device("cuda", 1)
    assert devices.resolve("cuda") == torch.device("cuda", 0)
    assert devices.resolve("auto") == torch.device("cuda", 0)
    listed = devices.list_devices()
    assert [d.id for d in listed] == ["cuda:0", "cuda:1", "cpu"]
    assert listed[0].name == "NVIDIA Fake 80GB" and listed[0].memory_bytes == 80 * 2**30
    assert "80.0 GiB" in listed[0].label
    _fake_cuda(monkeypatch, 1)
    with pytest.raises(DeviceError, match="only cuda:0 exists"):
        devices.resolve("cuda:1")


def test_list_devices_ends_with_the_cpu_named_with_its_memory():
    listed = devices.list_devices()
    cpu = listed[-1]
    assert cpu.id == "cpu" and cpu.kind == "cpu" and cpu.name
    assert cpu.memory_bytes is None or cpu.memory_bytes > 2**26
    assert devices.describe(torch.device("cpu")) == cpu
    assert devices.device_id(torch.device("cpu")) == "cpu"


def test_out_of_memory_is_recognised():
    assert devices.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert devices.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert devices.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert not devices.is_out_of_memory(RuntimeError("shape mismatch"))
