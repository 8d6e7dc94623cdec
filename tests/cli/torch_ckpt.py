#!/usr/bin/python3
"""torch_ckpt.py: a bpc checkpoint loads into the PyTorch twin of its model.

    /usr/bin/python3 tests/cli/torch_ckpt.py CKPT.safetensors MNIST_DIR EVAL.json

The twin is the model of tests/cli/test_train.sh (ck.bp), written with stock PyTorch
modules registered under the IR's layer indices, so that `load_state_dict(strict=True)`
checks every name and shape of the file:

  1 conv 4 size 3 stride 2 pad same relu   nn.Conv2d(1, 4, 3, stride=2, bias=False),
                                           TensorFlow 'same' padding (the odd pixel
                                           after), ReLU
  2 batchnorm                              nn.BatchNorm2d(4, eps=1e-3, momentum=0.01)
  3 loccon 3 size 3 stride 2 relu          a locally connected layer, weight
                                           [Ho*Wo, out, in, kh, kw], on F.unfold
  4 maxpool size 2                         nn.MaxPool2d(2)
  5 dropout 0.2                            nn.Dropout(0.2) (identity in eval mode)
  6 dense 16 relu                          nn.Flatten() on NCHW, nn.Linear(27, 16)
  7 batchnorm                              nn.BatchNorm1d(16, eps=1e-3, momentum=0.01)
  8 output 10                              nn.Linear(16, 10, bias=False)

The file is read with safetensors.torch.load_file when the safetensors package is
installed, and otherwise with the small json + numpy reader below. The twin then
predicts (argmax Q) the first images of the MNIST test split and must agree with the
predictions in EVAL.json (`bpc eval --json` on the same checkpoint), except where the
twin's two largest Q values are within 1e-4 of each other (float32 rounding may order
a near-tie either way; such images are counted and must be few). Also checks the
checkpoint's metadata. Exit status 1 on any failure.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import st_file

META_KEYS = ["format", "bpc_version", "source_sha256", "epoch", "seed", "global_step", "lr",
             "rule", "best_val_acc", "best_epoch", "epochs_since_gain", "step_in_epoch"]


def read_safetensors(path):
    """({name: torch tensor}, metadata) of a safetensors file."""
    header, meta, data = st_file.read(path)
    try:
        from safetensors.torch import load_file
        return load_file(path), meta
    except ImportError:
        pass
    kinds = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "U8": "u1"}
    out = {}
    for name, v in header.items():
        b, e = v["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=kinds[v["dtype"]]).reshape(v["shape"]).copy()
        out[name] = torch.from_numpy(arr)
    return out, meta


def read_idx_images(mnist_dir, count):
    for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"):
        p = os.path.join(mnist_dir, name)
        if os.path.exists(p):
            raw = gzip.open(p).read() if p.endswith(".gz") else open(p, "rb").read()
            n, h, w = struct.unpack(">III", raw[4:16])
            x = np.frombuffer(raw[16:16 + count * h * w], dtype=np.uint8)
            return x.reshape(count, 1, h, w).copy()
    raise FileNotFoundError(f"no t10k-images-idx3-ubyte in {mnist_dir}")


def tf_same_pad(x, k, s):
    """TensorFlow 'same' padding of an NCHW tensor: top/left get total // 2."""
    h, w = x.shape[2], x.shape[3]
    ph = max((-(-h // s) - 1) * s + k - h, 0)
    pw = max((-(-w // s) - 1) * s + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class LocCon(nn.Module):
    """Locally connected 2-D, 'valid' padding, no bias: weight [Ho*Wo, out, in, kh, kw]."""

    def __init__(self, cin, cout, k, stride, ho, wo):
        super().__init__()
        self.k, self.stride, self.ho, self.wo = k, stride, ho, wo
        self.weight = nn.Parameter(torch.zeros(ho * wo, cout, cin, k, k))

    def forward(self, x):
        cols = F.unfold(x, self.k, stride=self.stride)           # [n, in*k*k, P]
        w = self.weight.reshape(self.weight.shape[0], self.weight.shape[1], -1)
        y = torch.einsum("njp,pfj->nfp", cols, w)               # [n, out, P]
        return y.reshape(x.shape[0], -1, self.ho, self.wo)


class Twin(nn.Module):
    def __init__(self):
        super().__init__()
        self.add_module("1", nn.Conv2d(1, 4, 3, stride=2, bias=False))
        self.add_module("2", nn.BatchNorm2d(4, eps=1e-3, momentum=0.01))
        self.add_module("3", LocCon(4, 3, 3, 2, 6, 6))
        self.add_module("4", nn.MaxPool2d(2))
        self.add_module("5", nn.Dropout(0.2))
        self.add_module("6", nn.Linear(27, 16, bias=False))
        self.add_module("7", nn.BatchNorm1d(16, eps=1e-3, momentum=0.01))
        self.add_module("8", nn.Linear(16, 10, bias=False))

    def forward(self, x_u8):
        m = dict(self.named_children())
        h = x_u8.to(torch.float64) / 255.0
        h = m["2"](torch.relu(m["1"](tf_same_pad(h, 3, 2))))
        h = m["5"](m["4"](torch.relu(m["3"](h))))
        h = m["7"](torch.relu(m["6"](torch.flatten(h, 1))))
        return m["8"](h)


def main():
    ckpt, mnist_dir, eval_json = sys.argv[1:4]
    sd, meta = read_safetensors(ckpt)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        print(f"FAIL metadata lacks {missing}")
        return 1
    if len(meta["source_sha256"]) != 64:
        print(f"FAIL source_sha256 is {meta['source_sha256']!r}")
        return 1
    twin = Twin().double()
    result = twin.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
    print(f"ok   load_state_dict(strict=True): {len(sd)} tensors, {result}")
    twin.eval()
    ev = json.load(open(eval_json))
    preds = ev["predictions"]
    x = torch.from_numpy(read_idx_images(mnist_dir, len(preds)))
    with torch.no_grad():
        q = twin(x)
    top2 = torch.topk(q, 2, dim=1).values
    near = (top2[:, 0] - top2[:, 1]) < 1e-4
    ours = q.argmax(dim=1)
    theirs = torch.tensor(preds)
    differ = (ours != theirs) & ~near
    print(f"     {len(preds)} images: twin and bpc eval agree on {(ours == theirs).sum().item()}, "
          f"{near.sum().item()} near-ties, {differ.sum().item()} real disagreements")
    if differ.any() or near.sum().item() > len(preds) // 20:
        print("FAIL the twin's predictions differ from bpc eval's at",
              differ.nonzero().flatten().tolist()[:10])
        return 1
    acc = (ours == theirs).double().mean().item()
    print(f"ok   twin predictions equal bpc eval's ({acc:.4f} agreement)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
