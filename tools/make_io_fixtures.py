#!/usr/bin/env python3
"""Writes the weight-file fixtures of tests/test_io_weights.cpp into tests/fixtures/io/.

Python 3 standard library only: no torch, no numpy. The PyTorch checkpoints are written the way torch.save
does it (a zip of "<archive>/data.pkl" pickled with protocol 2, one stored record per storage, 64-byte aligned
data), with stand-in `torch` / `torch._utils` modules registered in sys.modules so that the pickle names the
real globals. The output is deterministic; run it again after changing it and commit the files:

    python3 tools/make_io_fixtures.py

Tensor values come from formulas that the C++ test recomputes (all exactly representable in the stored dtype):
    formula(seed, i)     = ((i * 37 + seed * 101) % 211 - 105) / 16     (f32, f16, bf16)
    formula_fp8(seed, i) = ((i * 5 + seed) % 15 - 7) / 4                 (f8 e4m3fn)
    int_formula(i)       = i * 1000003 - 5                               (i64)
"""

import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
import zlib

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")
ARCHIVE = "ckpt"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
# The malicious fixtures would create these files if a loader executed them; the test asserts they stay absent.
PWNED_OS_SYSTEM = "/tmp/lf_io_fixture_pwned_os_system"
PWNED_EVAL = "/tmp/lf_io_fixture_pwned_eval"


def formula(seed, i):
    return ((i * 37 + seed * 101) % 211 - 105) / 16.0


def formula_fp8(seed, i):
    return ((i * 5 + seed) % 15 - 7) / 4.0


def int_formula(i):
    return i * 1000003 - 5


# --- element encoders (exact values only: every formula value is representable) ---------------------------------

def encode_f32(v):
    return struct.pack("<f", v)


def encode_f16(v):
    out = struct.pack("<e", v)
    assert struct.unpack("<e", out)[0] == v, v
    return out


def encode_bf16(v):
    bits = struct.unpack("<I", struct.pack("<f", v))[0]
    assert bits & 0xFFFF == 0, v
    return struct.pack("<H", bits >> 16)


def encode_f8e4m3(v):
    sign = 0x80 if v < 0 else 0
    a = abs(v)
    if a == 0:
        return bytes([sign])
    exponent = 0
    while a >= 2.0 ** (exponent + 1):
        exponent += 1
    while a < 2.0 ** exponent:
        exponent -= 1
    if exponent < -6:  # subnormal: multiples of 2^-9
        mantissa = a / 2.0 ** -9
        assert mantissa == int(mantissa) and mantissa < 8, v
        return bytes([sign | int(mantissa)])
    mantissa = (a / 2.0 ** exponent - 1) * 8
    assert mantissa == int(mantissa) and exponent + 7 <= 15, v
    return bytes([sign | ((exponent + 7) << 3) | int(mantissa)])


def encode_i64(v):
    return struct.pack("<q", v)


# --- stand-in torch modules --------------------------------------------------------------------------------------

torch_module = types.ModuleType("torch")
torch_utils_module = types.ModuleType("torch._utils")
torch_module._utils = torch_utils_module


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    raise RuntimeError("fixture stand-in, never called")


def _rebuild_parameter(data, requires_grad, backward_hooks):
    raise RuntimeError("fixture stand-in, never called")


for function in (_rebuild_tensor_v2, _rebuild_parameter):
    function.__module__ = "torch._utils"
    setattr(torch_utils_module, function.__name__, function)

STORAGE_TYPES = {}
for storage_name, encoder, element_size in [
    ("FloatStorage", encode_f32, 4),
    ("HalfStorage", encode_f16, 2),
    ("BFloat16Storage", encode_bf16, 2),
    ("Float8_e4m3fnStorage", encode_f8e4m3, 1),
    ("LongStorage", encode_i64, 8),
]:
    storage_class = type(storage_name, (), {"__module__": "torch"})
    setattr(torch_module, storage_name, storage_class)
    STORAGE_TYPES[storage_name] = (storage_class, encoder, element_size)

# torch 2.x pickles dtypes that have no legacy typed storage (float8) through _rebuild_tensor_v3, with an
# UntypedStorage (sized in bytes) and the dtype object as an extra argument.
torch_storage_module = types.ModuleType("torch.storage")
torch_module.storage = torch_storage_module
UntypedStorage = type("UntypedStorage", (), {"__module__": "torch.storage"})
torch_storage_module.UntypedStorage = UntypedStorage


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    raise RuntimeError("fixture stand-in, never called")


_rebuild_tensor_v3.__module__ = "torch._utils"
torch_utils_module._rebuild_tensor_v3 = _rebuild_tensor_v3


class DTypeStandIn:
    """Pickles as the global torch.<name>, as a torch.dtype does."""

    __module__ = "torch"

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return self.name


torch_module.float8_e4m3fn = DTypeStandIn("float8_e4m3fn")

sys.modules["torch"] = torch_module
sys.modules["torch._utils"] = torch_utils_module
sys.modules["torch.storage"] = torch_storage_module


class FakeStorage:
    """One "<archive>/data/<key>" record; pickled as a persistent id, like a torch TypedStorage."""

    def __init__(self, storage_name, key, values, claimed_numel=None, untyped_encoder=None):
        if untyped_encoder:
            self.storage_class = UntypedStorage
            self.data = b"".join(untyped_encoder(v) for v in values)
            self.numel = len(self.data)  # an untyped storage counts bytes
        else:
            storage_class, encoder, _ = STORAGE_TYPES[storage_name]
            self.storage_class = storage_class
            self.data = b"".join(encoder(v) for v in values)
            self.numel = len(values) if claimed_numel is None else claimed_numel
        self.key = key


class FakeTensor:
    def __init__(self, storage, offset, size, stride=None, parameter=False, dtype=None):
        if stride is None:  # contiguous
            stride, step = [], 1
            for dim in reversed(size):
                stride.insert(0, step)
                step *= dim
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)
        self.parameter = parameter
        self.dtype = dtype  # set: pickled through _rebuild_tensor_v3

    def __reduce_ex__(self, protocol):
        if self.parameter:  # what an nn.Parameter pickles as
            plain = FakeTensor(self.storage, self.offset, self.size, self.stride)
            return (_rebuild_parameter, (plain, True, collections.OrderedDict()))
        args = (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())
        if self.dtype is not None:
            return (_rebuild_tensor_v3, args + (self.dtype,))
        return (_rebuild_tensor_v2, args)


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.storage_class, obj.key, "cpu", obj.numel)
        return None


class Storages:
    """Hands out storage keys "0", "1", ... in creation order, as torch.save numbers them."""

    def __init__(self):
        self.all = []

    def new(self, storage_name, values, claimed_numel=None, untyped_encoder=None):
        storage = FakeStorage(storage_name, str(len(self.all)), values, claimed_numel, untyped_encoder)
        self.all.append(storage)
        return storage

    def tensor(self, storage_name, size, values, parameter=False):
        return FakeTensor(self.new(storage_name, values), 0, size, parameter=parameter)


def numel(size):
    count = 1
    for dim in size:
        count *= dim
    return count


def formula_tensor(storages, storage_name, size, seed, parameter=False):
    values = [formula(seed, i) for i in range(numel(size))]
    return storages.tensor(storage_name, size, values, parameter)


def pickle_state(obj):
    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


# --- zip writers --------------------------------------------------------------------------------------------------

def torch_records(pickle_bytes, storages):
    records = [(f"{ARCHIVE}/data.pkl", pickle_bytes), (f"{ARCHIVE}/byteorder", b"little")]
    records += [(f"{ARCHIVE}/data/{s.key}", s.data) for s in storages.all]
    records += [(f"{ARCHIVE}/version", b"3\n"), (f"{ARCHIVE}/.data/version", b"3\n")]
    return records


def alignment_extra(offset, name, zip64_extra_size):
    """An extra field (id 'FB', as PyTorch uses) that puts the record's data on a 64-byte boundary."""
    used = offset + 30 + len(name.encode()) + zip64_extra_size + 4
    padding = (-used) % 64
    return struct.pack("<HH", 0x4246, padding) + b"Z" * padding


def write_with_zipfile(records, force_zip64=False, deflate=()):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in records:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            if info.compress_type == zipfile.ZIP_STORED:
                info.extra = alignment_extra(buffer.tell(), name, 20 if force_zip64 else 0)
            with archive.open(info, "w", force_zip64=force_zip64) as handle:
                handle.write(data)
    return buffer.getvalue()


def write_zip64_by_hand(records):
    """Every size and offset through ZIP64 fields (0xffffffff placeholders, ZIP64 end record and locator), as a
    >4 GB checkpoint has them; zipfile itself only writes those when the archive really is that large."""
    out, central = bytearray(), bytearray()
    for name, data in records:
        name_bytes, offset, crc = name.encode(), len(out), zlib.crc32(data)
        local_zip64 = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        extra = local_zip64 + alignment_extra(offset, name, len(local_zip64))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(name_bytes), len(extra))
        out += name_bytes + extra
        assert len(out) % 64 == 0
        out += data
        central_zip64 = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(name_bytes), len(central_zip64), 0, 0, 0, 0, 0xFFFFFFFF)
        central += name_bytes + central_zip64
    directory_offset = len(out)
    out += central
    end64_offset = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(records), len(records), len(central),
                       directory_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64_offset, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


def local_data_offset(zip_bytes, name):
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        info = archive.getinfo(name)
    name_size, extra_size = struct.unpack_from("<HH", zip_bytes, info.header_offset + 26)
    return info.header_offset + 30 + name_size + extra_size, info.file_size


def check_zip(zip_bytes):
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        assert archive.testzip() is None


# --- contents -------------------------------------------------------------------------------------------------------

def normal_state_dict():
    """Nested like a training checkpoint: generator / generator_ema / optimizer / scalars."""
    s = Storages()
    generator = collections.OrderedDict()
    generator["model.blocks.0.self_attn.q.weight"] = formula_tensor(s, "BFloat16Storage", (4, 8), 1)
    generator["model.blocks.0.self_attn.q.bias"] = formula_tensor(s, "FloatStorage", (8,), 2)
    generator["model.blocks.0.norm.weight"] = formula_tensor(s, "HalfStorage", (8,), 3)
    fp8_bytes = s.new(None, [formula_fp8(4, i) for i in range(32)], untyped_encoder=encode_f8e4m3)
    generator["model.blocks.0.ffn.fc1.weight"] = FakeTensor(fp8_bytes, 0, (2, 16), dtype=torch_module.float8_e4m3fn)
    generator["model.pos_ids"] = s.tensor("LongStorage", (6,), [int_formula(i) for i in range(6)])
    generator["model.head.weight"] = formula_tensor(s, "FloatStorage", (3, 4), 5, parameter=True)
    generator._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1})])

    shared = s.new("FloatStorage", [formula(11, i) for i in range(64)])  # two views of one storage
    generator_ema = {
        "model.blocks.0.self_attn.q.weight": FakeTensor(shared, 0, (4, 8)),
        "model.blocks.0.self_attn.k.weight": FakeTensor(shared, 32, (4, 8)),
        "model.scale": s.tensor("FloatStorage", (), [0.5]),
        "model.empty": s.tensor("FloatStorage", (0, 4), []),
        # The typed-storage spelling of a float8 tensor, for writers other than torch 2.x.
        "model.blocks.0.ffn.fc1.weight": s.tensor("Float8_e4m3fnStorage", (4, 4),
                                                  [formula_fp8(5, i) for i in range(16)]),
    }
    optimizer = {
        "state": {0: {"step": 10, "exp_avg": formula_tensor(s, "FloatStorage", (8,), 7)}, 1: {"step": 10}},
        "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
                          "params": [0, 1], "name": None, "big": 2 ** 40, "negative": -70000, "tag": b"\x00\xffab"}],
    }
    state = {"generator": generator, "generator_ema": generator_ema, "optimizer": optimizer, "step": 1234,
             "note": "fixture written by tools/make_io_fixtures.py"}
    return pickle_state(state), s


def small_state_dict():
    s = Storages()
    state = {"generator": {"w": formula_tensor(s, "BFloat16Storage", (4, 8), 1),
                           "b": formula_tensor(s, "FloatStorage", (8,), 2)}}
    return pickle_state(state), s


def noncontiguous_state_dict():
    s = Storages()
    transposed = FakeTensor(s.new("FloatStorage", [formula(6, i) for i in range(12)]), 0, (4, 3), stride=(1, 4))
    return pickle_state({"w_t": transposed, "ok": formula_tensor(s, "FloatStorage", (3,), 2)}), s


def out_of_bounds_state_dict():
    s = Storages()
    storage = s.new("FloatStorage", [formula(1, i) for i in range(32)])
    return pickle_state({"w": FakeTensor(storage, 0, (5, 8))}), s


def missing_storage_state_dict():
    s = Storages()
    tensor = formula_tensor(s, "FloatStorage", (8,), 2)
    state = pickle_state({"w": tensor})
    s.all = []  # the record is never written
    return state, s


# Hand-assembled like an attacker would: these globals are not reachable through a stand-in module.
def malicious_os_system_pickle():
    command = f"touch {PWNED_OS_SYSTEM}".encode()
    return (b"\x80\x02}q\x00(X\x04\x00\x00\x00evilq\x01cos\nsystem\nq\x02X" + struct.pack("<I", len(command)) +
            command + b"\x85q\x03Rq\x04u.")


def malicious_eval_pickle():
    source = f"open({PWNED_EVAL!r}, 'w').close()".encode()
    body = (b"}\x94(\x8c\x06weight\x94\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c" + bytes([len(source)]) +
            source + b"\x94\x85\x94R\x94u.")
    return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body


def duplicate_names_state_dict():
    """"a.b" twice once flattened: a key with a dot and a nested dict."""
    s = Storages()
    state = {"a.b": formula_tensor(s, "FloatStorage", (2,), 1), "a": {"b": formula_tensor(s, "FloatStorage", (2,), 2)}}
    return pickle_state(state), s


def cyclic_pickle():
    """A dict that contains itself: a naive recursive walk never ends."""
    return b"\x80\x02}q\x00X\x04\x00\x00\x00selfh\x00s."


def shared_reference_bomb_pickle(levels=40):
    """level[k] = (level[k-1], level[k-1]): a few hundred bytes whose tree has 2^40 leaves."""
    out = b"\x80\x02}q\x00X\x04\x00\x00\x00bomb]q\x01"
    for k in range(2, levels + 2):  # the previous level is on the stack: push it again and pair the two
        out += b"h" + bytes([k - 1]) + b"\x86q" + bytes([k])
    return out + b"s."


def plain_values():
    return {"i": -3, "big": -2 ** 40, "k": 70000, "f": 1.5, "s": "text", "b": b"\x00\x01", "l": [1, 2, 3],
            "t": (1, "x", None), "tr": True, 7: False, "od": collections.OrderedDict([("z", 1)]), "e": [],
            "u": "\u00e9"}


def reference_safetensors():
    """A safetensors file laid out as the reference Python library writes it (sorted names, padded header)."""
    tensors = {
        "a.bf16": ("BF16", (2, 3), b"".join(encode_bf16(formula(1, i)) for i in range(6))),
        "b.f16": ("F16", (4,), b"".join(encode_f16(formula(2, i)) for i in range(4))),
        "c.f32": ("F32", (2, 2), b"".join(encode_f32(formula(3, i)) for i in range(4))),
        "d.f8": ("F8_E4M3", (5,), b"".join(encode_f8e4m3(formula_fp8(4, i)) for i in range(5))),
        "e.i64": ("I64", (3,), b"".join(encode_i64(int_formula(i)) for i in range(3))),
        "f.bool": ("BOOL", (3,), bytes([1, 0, 1])),
    }
    header, data = {"__metadata__": {"format": "pt", "source": "make_io_fixtures"}}, b""
    for name in sorted(tensors, key=lambda n: (-{"I64": 8, "F32": 4, "BF16": 2, "F16": 2}.get(tensors[n][0], 1), n)):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + data


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    outputs = {}

    normal = write_with_zipfile(torch_records(*normal_state_dict()))
    outputs["state_dict.pt"] = normal
    outputs["state_dict_zip64.pt"] = write_zip64_by_hand(torch_records(*small_state_dict()))
    outputs["state_dict_force_zip64.pt"] = write_with_zipfile(torch_records(*small_state_dict()), force_zip64=True)
    outputs["noncontiguous.pt"] = write_with_zipfile(torch_records(*noncontiguous_state_dict()))
    outputs["storage_out_of_bounds.pt"] = write_with_zipfile(torch_records(*out_of_bounds_state_dict()))
    outputs["storage_missing.pt"] = write_with_zipfile(torch_records(*missing_storage_state_dict()))
    outputs["deflated.pt"] = write_with_zipfile(torch_records(*small_state_dict()), deflate={f"{ARCHIVE}/data/0"})
    empty_storages = Storages()
    outputs["malicious_os_system.pt"] = write_with_zipfile(torch_records(malicious_os_system_pickle(), empty_storages))
    outputs["malicious_eval.pt"] = write_with_zipfile(torch_records(malicious_eval_pickle(), empty_storages))
    outputs["duplicate_names.pt"] = write_with_zipfile(torch_records(*duplicate_names_state_dict()))
    outputs["cyclic.pt"] = write_with_zipfile(torch_records(cyclic_pickle(), empty_storages))
    outputs["shared_reference_bomb.pt"] = write_with_zipfile(
        torch_records(shared_reference_bomb_pickle(), empty_storages))
    big_endian = [(n, b"big" if n.endswith("/byteorder") else d) for n, d in torch_records(*small_state_dict())]
    outputs["byteorder_big.pt"] = write_with_zipfile(big_endian)
    for name in list(outputs):
        check_zip(outputs[name])
        with zipfile.ZipFile(io.BytesIO(outputs[name])) as archive:
            for info in archive.infolist():
                if info.compress_type == zipfile.ZIP_STORED:
                    assert local_data_offset(outputs[name], info.filename)[0] % 64 == 0, (name, info.filename)

    outputs["truncated.pt"] = normal[: len(normal) * 6 // 10]
    # A flipped letter inside data.pkl: the pickle still parses, only the CRC can tell.
    pickle_at, pickle_size = local_data_offset(normal, f"{ARCHIVE}/data.pkl")
    key_at = normal.index(b"generator_ema", pickle_at, pickle_at + pickle_size)
    corrupt = bytearray(normal)
    corrupt[key_at] = ord("G")
    outputs["corrupt_crc.pt"] = bytes(corrupt)
    # The end record points its central directory past the end of the file.
    corrupt = bytearray(normal)
    end_at = normal.rindex(b"PK\x05\x06")
    struct.pack_into("<I", corrupt, end_at + 16, len(normal) + 100)
    outputs["corrupt_central_directory.pt"] = bytes(corrupt)

    outputs["reference.safetensors"] = reference_safetensors()
    # Plain values only, to check the unpickler against what CPython's pickler writes at both ends of 2..5.
    for protocol in (2, 5):
        outputs[f"plain_protocol{protocol}.pkl"] = pickle.dumps(plain_values(), protocol=protocol)

    total = 0
    for name, data in sorted(outputs.items()):
        with open(os.path.join(OUT_DIR, name), "wb") as handle:
            handle.write(data)
        total += len(data)
        print(f"{name:32s} {len(data):7d} bytes")
    print(f"{'total':32s} {total:7d} bytes -> {os.path.normpath(OUT_DIR)}")


if __name__ == "__main__":
    main()
