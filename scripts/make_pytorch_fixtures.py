#!/usr/bin/env python3
"""Writes the PyTorch fixtures in Tests/InceptionFormatsTests/Fixtures/pytorch/.

Three kinds of file:

1. Written by real torch.save (torch from pip; these fixtures were made with the CPU wheel
   torch 2.13.0+cpu, `pip install torch`):
     state_dict.pth  a module's state_dict (conv and batch-norm weights, int64
                     num_batches_tracked, the OrderedDict's _metadata) plus tensors of other dtypes
                     and layouts: float16, bfloat16, float64, int32, int8, uint8, bool, uint16
                     (written through _rebuild_tensor_v3), complex64, a transposed (non-contiguous)
                     weight, a stride-0 expanded tensor, two views of one shared storage at different
                     offsets, a 0-d scalar, an empty tensor and an nn.Parameter (_rebuild_parameter).
     wrapped.pth     a training checkpoint {"epoch", "arch", "optimizer", "state_dict": {...}}.
     legacy.pt       the pre-1.6 format (_use_new_zipfile_serialization=False): five pickles and the
                     raw storages (torchvision's 2019 weights, GoogLeNet's among them, are like this).
     torchscript.pt  a torch.jit.save archive, to be refused.

2. Emulated torch.save archives, for layouts torch writes only for huge or foreign files and for
   deliberately broken ones. `write_torch_zip` reproduces the layout of torch's
   PyTorchStreamWriter (caffe2/serialize/inline_container.cc, as read from the wheel's output):
   every member under one folder; local headers with version 0, flags 0x0808 (UTF-8 names, sizes
   in a data descriptor), method 0 (stored), zero time, CRC and sizes, and an extra field "FB"
   padded with 'Z' so each member's data starts on a 64-byte boundary; a data descriptor
   (PK\\x07\\x08, CRC, sizes) after each member; a central directory; and always a zip64
   end-of-central-directory record and locator before the classic record. Records, in torch's
   order: data.pkl, .format_version ("1"), .storage_alignment ("64"), byteorder, data/KEY...,
   version ("3"), .data/serialization_id. The pickles are protocol 2, written opcode by opcode
   exactly as torch.save's pickler lays out a state dict (see `tensor_v2`), without memo entries.
     zip64.pth          a state dict whose central directory uses zip64 extra fields for every
                        size and offset (what torch writes for members past 4 GiB).
     bigendian.pth      byteorder "big" with byte-swapped storages (as saved on a big-endian host).
     short_storage.pth  a storage record shorter than its declared element count.
     out_of_bounds.pth  a strided view that reaches past the end of its storage.
     compressed.pth     a state dict re-zipped with deflate (torch never compresses).
   When torch is importable, the legitimate emulated files (zip64.pth, bigendian.pth) are loaded
   back with torch.load(weights_only=True) and compared with what they are meant to hold.

3. Hostile pickles, built byte by byte here and never unpickled by Python, each wrapped in an
   otherwise valid torch archive. Each payload would create a marker file under /tmp if a loader
   executed it; the tests check that the markers never appear.
     hostile_os_system.pth      GLOBAL os.system + REDUCE ("touch /tmp/pwned-inception-os-system").
     hostile_builtins_eval.pth  protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL
                                builtins.eval + REDUCE.
     hostile_subprocess.pth     a real tensor entry first, then subprocess.Popen in the same dict.
     hostile_legacy.pt          the legacy format's header pickles, then posix.system.
     hostile_mark_bomb.pth      20,000 nested MARKs.
     hostile_nesting_bomb.pth   5,000 lists nested inside each other (EMPTY_LIST ... APPEND).

expected.json records, per file, the tensors every reader should return (dtype, shape, float32
bit patterns after conversion) and, for the hostile files, the callable that must be named.

Run from the repository root:  python3 scripts/make_pytorch_fixtures.py
"""
import binascii
import collections
import json
import os
import shutil
import struct
import sys
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "InceptionFormatsTests", "Fixtures", "pytorch")
SEED = 20140917  # GoogLeNet's arXiv date

try:
    import torch
except ImportError:  # pragma: no cover - the committed fixtures were made with torch
    torch = None


def f32_bits(array):
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32)).reshape(-1).view(np.uint32).tolist()


# ---------------------------------------------------------------------------------------------
# Emulating torch.save's zip container


def write_torch_zip(path, archive, records, zip64_extras=False, compress=False):
    """Writes `records` ([(name, bytes)], names relative to the archive folder) as torch does."""
    if compress:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in records:
                z.writestr(f"{archive}/{name}", data)
        return
    out = bytearray()
    central = bytearray()
    for name, data in records:
        full = f"{archive}/{name}".encode()
        offset = len(out)
        crc = binascii.crc32(data) & 0xFFFFFFFF
        # Local header: pad with an "FB" extra field so the data is 64-byte aligned.
        header_len = 30 + len(full) + 4
        pad = (64 - (offset + header_len) % 64) % 64
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 0, 0x0808, 0, 0, 0, 0, 0, 0, len(full), len(extra))
        out += full + extra
        assert len(out) % 64 == 0
        out += data
        if zip64_extras:
            out += struct.pack("<IIQQ", 0x08074B50, crc, len(data), len(data))
        else:
            out += struct.pack("<IIII", 0x08074B50, crc, len(data), len(data))
        if zip64_extras:
            cextra = struct.pack("<HHQQQ", 0x0001, 24, len(data), len(data), offset)
            sizes = (0xFFFFFFFF, 0xFFFFFFFF)
            local = 0xFFFFFFFF
        else:
            cextra = b""
            sizes = (len(data), len(data))
            local = offset
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0, 0, 0x0808, 0, 0, 0, crc,
                               sizes[0], sizes[1], len(full), len(cextra), 0, 0, 0, 0, local)
        central += full + cextra
    cd_offset = len(out)
    out += central
    count = len(records)
    zip64_offset = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x1E, 0x2D, 0, 0, count, count, len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, zip64_offset, 1)
    if zip64_extras:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), cd_offset, 0)
    with open(path, "wb") as f:
        f.write(out)


def torch_records(pickle_bytes, storages, byteorder="little"):
    """The records of a torch.save archive, in torch's order."""
    records = [("data.pkl", pickle_bytes), (".format_version", b"1"), (".storage_alignment", b"64"),
               ("byteorder", byteorder.encode())]
    records += [(f"data/{key}", data) for key, data in storages]
    records += [("version", b"3\n"), (".data/serialization_id", b"0" * 40)]
    return records


# ---------------------------------------------------------------------------------------------
# Writing protocol-2 pickles opcode by opcode (no Python objects are pickled or unpickled)


def op_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_unicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def op_int(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    if -(2 ** 31) <= n < 2 ** 31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes(8, "little", signed=True)
    return b"\x8a\x08" + raw


def op_tuple(items):
    if not items:
        return b")"
    return b"(" + b"".join(items) + b"t"


def tensor_v2(storage_type, key, numel, offset, size, stride, location="cpu"):
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    persistent_id = op_tuple([op_unicode("storage"), op_global("torch", storage_type), op_unicode(key),
                              op_unicode(location), op_int(numel)])
    return (op_global("torch._utils", "_rebuild_tensor_v2") + b"(" + persistent_id + b"Q" + op_int(offset)
            + op_tuple([op_int(n) for n in size]) + op_tuple([op_int(n) for n in stride]) + b"\x89"
            + op_global("collections", "OrderedDict") + b")R" + b"t" + b"R")


def state_dict_pickle(entries):
    """PROTO 2, OrderedDict(), SETITEMS of (name, tensor) pairs, STOP."""
    body = b"".join(op_unicode(name) + value for name, value in entries)
    return b"\x80\x02" + op_global("collections", "OrderedDict") + b")R" + b"(" + body + b"u" + b"."


# ---------------------------------------------------------------------------------------------


def describe_tensor(t):
    """expected.json entry for a torch tensor."""
    dtype = str(t.dtype).replace("torch.", "")
    entry = {"dtype": dtype, "shape": list(t.shape), "contiguous": bool(t.is_contiguous()),
             "storage_offset": int(t.storage_offset())}
    if t.dtype.is_complex:
        entry["convertible"] = False
    else:
        entry["f32_bits"] = f32_bits(t.detach().to(torch.float32).numpy())
    return entry


def make_real_fixtures(expected):
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)

    def normal(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    module = torch.nn.Sequential(collections.OrderedDict([
        ("conv1", torch.nn.Conv2d(3, 4, 3)),
        ("bn1", torch.nn.BatchNorm2d(4, eps=1e-3)),
        ("conv2", torch.nn.Conv2d(4, 2, 1, bias=False)),
    ]))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(normal(*p.shape))
        module.bn1.running_mean.copy_(normal(4))
        module.bn1.running_var.copy_(normal(4).abs() + 0.5)
        module.bn1.num_batches_tracked.fill_(12345)
    sd = module.state_dict()  # an OrderedDict with _metadata (pickled with BUILD)

    base = torch.arange(24, dtype=torch.float32) / 8 - 1
    square = normal(3, 5)
    extras = collections.OrderedDict([
        ("extra.half", normal(2, 3).to(torch.float16)),
        ("extra.bfloat16", normal(5).to(torch.bfloat16)),
        ("extra.double", torch.randn(2, 2, generator=g, dtype=torch.float64)),
        ("extra.int32", torch.tensor([[-7, 0, 70000], [1, 2, 3]], dtype=torch.int32)),
        ("extra.int64_large", torch.tensor([2 ** 40 + 1, -3], dtype=torch.int64)),
        ("extra.int8", torch.tensor([-128, -1, 127], dtype=torch.int8)),
        ("extra.uint8", torch.tensor([0, 200, 255], dtype=torch.uint8)),
        ("extra.bool", torch.tensor([True, False, True])),
        ("extra.uint16", torch.tensor([1, 65535, 300], dtype=torch.int32).to(torch.uint16)),
        ("extra.complex", torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)),
        ("extra.transposed", square.t()),
        ("extra.expanded", torch.tensor([1.5, -2.0, 3.25]).expand(2, 3)),
        ("extra.shared_a", base[2:8].view(2, 3)),
        ("extra.shared_b", base[6:22].view(4, 4)[:, 1:3]),
        ("extra.scalar", torch.tensor(3.5)),
        ("extra.empty", torch.zeros(0, 3)),
        ("extra.parameter", torch.nn.Parameter(normal(2, 2))),
    ])
    assert not extras["extra.transposed"].is_contiguous()
    assert extras["extra.shared_a"].untyped_storage().data_ptr() == extras["extra.shared_b"].untyped_storage().data_ptr()
    for name, t in extras.items():
        sd[name] = t
    path = os.path.join(OUT, "state_dict.pth")
    torch.save(sd, path)
    expected["state_dict.pth"] = {"state_dict_key": None, "archive_name": "state_dict",
                                  "tensors": {k: describe_tensor(v) for k, v in sd.items()}}
    # The file reads back in torch with the restricted unpickler.
    back = torch.load(path, weights_only=True)
    assert list(back.keys()) == list(sd.keys())

    inner = collections.OrderedDict([("fc.weight", normal(3, 4)), ("fc.bias", normal(3))])
    checkpoint = {"epoch": 7, "arch": "googlenet", "optimizer": {"lr": 0.1, "momentum": 0.9, "nesterov": False},
                  "state_dict": inner, "best_acc1": 71.5}
    torch.save(checkpoint, os.path.join(OUT, "wrapped.pth"))
    expected["wrapped.pth"] = {"state_dict_key": "state_dict", "archive_name": "wrapped",
                               "tensors": {k: describe_tensor(v) for k, v in inner.items()}}

    legacy = collections.OrderedDict([
        ("conv.weight", normal(2, 3, 1, 1)),
        ("bn.num_batches_tracked", torch.tensor(77)),
        ("half", normal(3).to(torch.float16)),
        ("transposed", normal(2, 4).t()),
        ("shared_a", base[1:5]),
        ("shared_b", base[3:9].view(2, 3)),
    ])
    path = os.path.join(OUT, "legacy.pt")
    torch.save(legacy, path, _use_new_zipfile_serialization=False)
    expected["legacy.pt"] = {"state_dict_key": None, "archive_name": "",
                             "tensors": {k: describe_tensor(v) for k, v in legacy.items()}}
    back = torch.load(path, weights_only=True)
    assert list(back.keys()) == list(legacy.keys())
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(OUT, "torchscript.pt"))
    expected["torch_version"] = torch.__version__


def make_emulated_fixtures(expected):
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal((2, 3)).astype(np.float32)
    n = np.array([987654321], dtype=np.int64)
    h = rng.standard_normal(4).astype(np.float16)
    entries = [("layer.weight", tensor_v2("FloatStorage", "0", 6, 0, [2, 3], [3, 1])),
               ("layer.num_batches_tracked", tensor_v2("LongStorage", "1", 1, 0, [], [])),
               ("layer.half_t", tensor_v2("HalfStorage", "2", 4, 0, [2, 2], [1, 2]))]
    pickle_bytes = state_dict_pickle(entries)
    tensors = {
        "layer.weight": {"dtype": "float32", "shape": [2, 3], "f32_bits": f32_bits(w)},
        "layer.num_batches_tracked": {"dtype": "int64", "shape": [], "f32_bits": f32_bits(n.astype(np.float32))},
        "layer.half_t": {"dtype": "float16", "shape": [2, 2], "f32_bits": f32_bits(h.reshape(2, 2).T)},
    }

    little = [("0", w.tobytes()), ("1", n.tobytes()), ("2", h.tobytes())]
    write_torch_zip(os.path.join(OUT, "zip64.pth"), "zip64", torch_records(pickle_bytes, little), zip64_extras=True)
    expected["zip64.pth"] = {"state_dict_key": None, "archive_name": "zip64", "tensors": tensors}

    big = [("0", w.astype(">f4").tobytes()), ("1", n.astype(">i8").tobytes()), ("2", h.astype(">f2").tobytes())]
    write_torch_zip(os.path.join(OUT, "bigendian.pth"), "bigendian", torch_records(pickle_bytes, big, "big"))
    expected["bigendian.pth"] = {"state_dict_key": None, "archive_name": "bigendian", "tensors": tensors}

    write_torch_zip(os.path.join(OUT, "compressed.pth"), "compressed", torch_records(pickle_bytes, little), compress=True)

    # A storage declared as 6 floats whose record holds 4.
    short = state_dict_pickle([("w", tensor_v2("FloatStorage", "0", 6, 0, [2, 3], [3, 1]))])
    write_torch_zip(os.path.join(OUT, "short_storage.pth"), "short_storage",
                    torch_records(short, [("0", w.reshape(-1)[:4].tobytes())]))
    # A 3x3 view with row stride 3 of a 6-element storage: reaches element 8.
    oob = state_dict_pickle([("w", tensor_v2("FloatStorage", "0", 6, 0, [3, 3], [3, 1]))])
    write_torch_zip(os.path.join(OUT, "out_of_bounds.pth"), "out_of_bounds", torch_records(oob, [("0", w.tobytes())]))

    if torch is not None:
        for name in ("zip64.pth", "bigendian.pth"):
            back = torch.load(os.path.join(OUT, name), weights_only=True)
            for key, want in tensors.items():
                got = f32_bits(back[key].to(torch.float32).numpy())
                assert got == want["f32_bits"], (name, key)
                assert list(back[key].shape) == want["shape"], (name, key)


MARKER_OS = "/tmp/pwned-inception-os-system"
MARKER_EVAL = "/tmp/pwned-inception-eval"
MARKER_POPEN = "/tmp/pwned-inception-popen"
MARKER_LEGACY = "/tmp/pwned-inception-legacy"


def make_hostile_fixtures(expected):
    hostile = {}

    def write(name, pickle_bytes, refused, marker=None):
        write_torch_zip(os.path.join(OUT, name), name[:-4], torch_records(pickle_bytes, [("0", b"\0" * 24)]))
        hostile[name] = {"refused": refused, "marker": marker}

    # {"weight": os.system("touch ...")}
    payload = (b"\x80\x02}" + op_unicode("weight") + op_global("os", "system")
               + op_unicode("touch " + MARKER_OS) + b"\x85R" + b"s.")
    write("hostile_os_system.pth", payload, "os.system", MARKER_OS)

    # Protocol 4 with STACK_GLOBAL: builtins.eval("__import__('os').system('touch ...')")
    def short(s):
        b = s.encode()
        return b"\x8c" + bytes([len(b)]) + b + b"\x94"  # SHORT_BINUNICODE + MEMOIZE
    body = (short("builtins") + short("eval") + b"\x93\x94"
            + short("__import__('os').system('touch " + MARKER_EVAL + "')") + b"\x85\x94R\x94.")
    payload = b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body
    write("hostile_builtins_eval.pth", payload, "builtins.eval", MARKER_EVAL)

    # A plausible state dict: one real tensor, then subprocess.Popen(["touch", ...]).
    popen = (op_global("subprocess", "Popen") + b"]" + b"(" + op_unicode("touch") + op_unicode(MARKER_POPEN)
             + b"e" + b"\x85R")
    payload = state_dict_pickle([("w", tensor_v2("FloatStorage", "0", 6, 0, [2, 3], [3, 1])), ("hook", popen)])
    write("hostile_subprocess.pth", payload, "subprocess.Popen", MARKER_POPEN)

    # The legacy format: magic, protocol version and sys_info pickles, then os.system as the object.
    legacy = (b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19." + b"\x80\x02M\xe9\x03." + b"\x80\x02}."
              + b"\x80\x02" + op_global("posix", "system") + op_unicode("touch " + MARKER_LEGACY) + b"\x85R.")
    with open(os.path.join(OUT, "hostile_legacy.pt"), "wb") as f:
        f.write(legacy)
    hostile["hostile_legacy.pt"] = {"refused": "posix.system", "marker": MARKER_LEGACY}

    write("hostile_mark_bomb.pth", b"\x80\x02" + b"(" * 20000 + b")" + b"t" * 20000 + b".", "MARK")
    write("hostile_nesting_bomb.pth", b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".", "nest")
    expected["hostile"] = hostile


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    expected = {}
    if torch is None:
        sys.exit("make_pytorch_fixtures.py needs torch (pip install torch) for the torch.save fixtures")
    make_real_fixtures(expected)
    make_emulated_fixtures(expected)
    make_hostile_fixtures(expected)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    total = 0
    for name in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, name))
        total += size
        print(f"{size:8d}  {name}")
    print(f"{total:8d}  total")
    for marker in (MARKER_OS, MARKER_EVAL, MARKER_POPEN, MARKER_LEGACY):
        assert not os.path.exists(marker), marker


if __name__ == "__main__":
    main()
