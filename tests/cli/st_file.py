"""st_file.py: the layout of a safetensors file, for the test scripts beside it (the
`safetensors` package is not in Debian 12): an 8-byte little-endian header length, a
JSON header, then the raw tensors."""
import json
import struct


def read(path):
    """(header {name: {dtype, shape, data_offsets}}, __metadata__, the data bytes)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    return header, meta, buf[8 + n:]


def tensors(path):
    """({name: (dtype, shape, raw bytes)}, __metadata__) of a safetensors file."""
    header, meta, data = read(path)
    out = {}
    for name, v in header.items():
        b, e = v["data_offsets"]
        out[name] = (v["dtype"], tuple(v["shape"]), data[b:e])
    return out, meta


def floats(raw):
    """The float32 values of a tensor's raw bytes, as a tuple."""
    return struct.unpack("<%df" % (len(raw) // 4), raw)
