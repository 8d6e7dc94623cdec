#!/usr/bin/python3
"""torch_step.py: the PyTorch oracle for one bpc training step.

    /usr/bin/python3 tests/oracle/torch_step.py OUTDIR

OUTDIR is what build/oracle_dump wrote: model.json, before/after/batch.safetensors.
This script rebuilds the network from model.json with plain torch ops in float64,
starting from bpc's initial float32 tensors, feeds the same uint8 batch with the same
dropout masks and (for BrainProp) the same actions, takes one SGD step with autograd
and compares bpc's result with it. It is written from the specification (BrainProp
paper, Keras conventions, docs/DESIGN), not from bpc's kernels:

  input    uint8 / 255, NHWC
  conv     weight [F, K, K, Cin] (OHWI), no bias, TensorFlow 'same' padding
           (pad_total = max((out-1)*stride + k - in, 0), top/left get pad_total // 2)
  loccon   untied weight [P, F, K, K, Cin], P = Ho*Wo in row-major (oh, ow) order
  dense    weight [out, in] on the NHWC-flattened input, no bias; ReLU if asked
  maxpool  TensorFlow rules, 'same' pads with -inf
  batchnorm  Keras, after the ReLU: batch mean and biased batch variance over (N, H, W),
           eps 1e-3; moving = 0.99 * moving + 0.01 * batch statistic (biased variance)
  dropout  inverted dropout: multiply by bpc's exported mask (0 or 1/(1-rate))
  output   Q = x W^T, no bias
  loss     BrainProp: (1/nb) sum_b 1/2 (r_b - Q[b, a_b])^2, r = [a == label], actions a
           fixed (no gradient through the choice); EBP: mean cross-entropy of softmax(Q)
  update   plain SGD, W <- W - lr * dL/dW (+ 2 * l2 * W when l2 > 0)
  feedback how the feedback crosses a weight layer (model.json "feedback"), from the
           papers, not from bpc: tied (autograd's W^T); random: the fixed matrix
           "Lk.feedback" in its place; sign: mean|W| * sign(W); kolen_pollack: B in
           W's place, and B takes W's own update, both with the decay (W, B <-
           W, B - lr (dL/dW + (2 l2 + decay) (W, B))); direct: every weight layer's
           input is cut from the graph and the top of each block (the weight layer
           and the layers up to the next one) gets dL/dQ @ "Lk.feedback" as its
           gradient. Written as y = f(x.detach(), W) + f(x, M) - f(x, M).detach(): the
           value of f(x, W), the gradient of x through M, W's gradient exact.

Checks, each printed as one line, exit status 1 on any failure:
  value    |bpc - torch|_inf <= 1e-5 * max(|torch|_inf, 1e-30) for each updated
           trainable tensor, each batch-norm moving mean/variance, the loss, the
           Q-values, the RPE (BrainProp) and every layer's activations;
  update   |D_bpc - D_torch|_inf <= 1e-4 * |D_torch|_inf + f32 for every tensor that a
           step changes, D = after - before, so that a wrong but small update cannot hide
           behind the size of the weights. f32 = 2^-23 * |after|_inf is the float32
           rounding of bpc's stored result: bpc keeps weights in float32, so
           after - before cannot be known more precisely than that.
Lines marked "info" never fail: the feedback buffers "Lk.fb", compared with dL/d(act)
(for a ReLU layer dL/d(pre-activation), which is what bpc keeps there), a convention
of bpc's internals rather than part of the requirement.
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

REL = 1e-5          # value tolerance, relative to the tensor's max-norm
REL_UPDATE = 1e-4   # update tolerance, relative to the update's max-norm
TINY = 1e-30
F32_ULP = 2.0 ** -23
BN_EPS = 1e-3       # Keras BatchNormalization defaults
BN_MOMENTUM = 0.99

DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "U8": "u1"}


def read_safetensors(path):
    """Returns {name: numpy array} of a safetensors file (json + numpy only)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        if not 0 <= b <= e <= len(data):
            raise ValueError(f"{path}: {name}: offsets out of bounds")
        arr = np.frombuffer(data[b:e], dtype=DTYPES[v["dtype"]])
        out[name] = arr.reshape(v["shape"]).copy()
    return out


def same_pad(n, k, s):
    """TensorFlow 'same': output size and (before, after) padding along one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def pad_nchw(x, L, value=0.0):
    """Pads an NCHW tensor for layer L; checks the result against the IR's shapes."""
    k, s = L["ksize"], L["stride"]
    H, W = L["in"][0], L["in"][1]
    if L["pad_same"]:
        ho, pt, pb = same_pad(H, k, s)
        wo, pl, pr = same_pad(W, k, s)
        if (pt, pl) != (L["pad_top"], L["pad_left"]):
            raise AssertionError(f"L{L['index']}: IR pads top/left {L['pad_top']}/{L['pad_left']}, "
                                 f"TensorFlow 'same' gives {pt}/{pl}")
        x = F.pad(x, (pl, pr, pt, pb), value=value)
    else:
        ho, wo = (H - k) // s + 1, (W - k) // s + 1
    if [ho, wo] != L["out"][:2]:
        raise AssertionError(f"L{L['index']}: output {ho}x{wo} but the IR says {L['out'][:2]}")
    return x


class Twin:
    """The PyTorch network of model.json, float64, parameters from a dict of arrays."""

    def __init__(self, model, before):
        self.model = model
        self.layers = model["layers"]
        self.p = {}
        for name, arr in before.items():
            t = torch.tensor(arr, dtype=torch.float64)
            trainable = not name.endswith((".moving_mean", ".moving_variance", ".feedback"))
            self.p[name] = t.requires_grad_(trainable)
        self.new_state = {}   # moving statistics after the step
        self.acts = {}        # "Lk.act" -> NHWC activations
        self.direct = self.layers[-1]["feedback"] == "direct"
        self.tops = {}        # direct: block top index -> the weight layer that owns B
        self.first = next(L["index"] for L in self.layers
                          if L["kind"] in ("dense", "output", "conv", "loccon", "batchnorm"))

    def crossing(self, L):
        """The matrix that layer L's feedback crosses, or None for W itself (tied)."""
        mode, i = L["feedback"], L["index"]
        if i == self.first:   # no feedback goes below the first trainable layer
            return None
        if mode in ("random", "kolen_pollack"):
            return self.p[f"L{i}.feedback"]
        if mode == "sign":
            W = self.p[f"L{i}.weight"].detach()
            return W.abs().mean() * torch.sign(W)
        return None

    @staticmethod
    def linear(L, h, W, nb):
        """The linear map of a dense, output, conv or loccon layer, before any ReLU."""
        kind = L["kind"]
        if kind in ("dense", "output"):
            return h.reshape(nb, -1) @ W.T
        xc = pad_nchw(h.permute(0, 3, 1, 2), L)
        if kind == "conv":
            return F.conv2d(xc, W.permute(0, 3, 1, 2), stride=L["stride"]).permute(0, 2, 3, 1)
        k, ho, wo, f = L["ksize"], L["out"][0], L["out"][1], L["out"][2]   # loccon [P, F, K, K, Cin]
        cols = F.unfold(xc, k, stride=L["stride"])   # [nb, Cin*K*K (c,kh,kw), P]
        Wr = W.permute(0, 1, 4, 2, 3).reshape(ho * wo, f, -1)
        return torch.einsum("njp,pfj->npf", cols, Wr).reshape(nb, ho, wo, f)

    def forward(self, x_u8, masks):
        nb = x_u8.shape[0]
        h = torch.tensor(x_u8, dtype=torch.float64) / 255.0
        self.acts["L0.act"] = h
        q = None
        for L in self.layers[1:]:
            i, kind = L["index"], L["kind"]
            if kind in ("dense", "output", "conv", "loccon"):
                W = self.p[f"L{i}.weight"]
                if self.direct:
                    h = h.detach()
                    self.block = i
                M = None if self.direct else self.crossing(L)
                if M is None:
                    y = self.linear(L, h, W, nb)
                else:
                    ym = self.linear(L, h, M, nb)
                    y = self.linear(L, h.detach(), W, nb) + (ym - ym.detach())
                if kind == "output":
                    q = y
                    h = y.reshape(nb, *L["out"])
                else:
                    h = (torch.relu(y) if L["relu"] else y).reshape(nb, *L["out"])
            elif kind == "maxpool":
                xc = pad_nchw(h.permute(0, 3, 1, 2), L, value=float("-inf"))
                h = F.max_pool2d(xc, L["ksize"], stride=L["stride"]).permute(0, 2, 3, 1)
            elif kind == "batchnorm":
                g, b = self.p[f"L{i}.gamma"], self.p[f"L{i}.beta"]
                mean = h.mean(dim=(0, 1, 2))
                var = ((h - mean) ** 2).mean(dim=(0, 1, 2))      # biased, as Keras
                h = g * (h - mean) / torch.sqrt(var + BN_EPS) + b
                for stat, batch_value in (("moving_mean", mean), ("moving_variance", var)):
                    old = self.p[f"L{i}.{stat}"]
                    self.new_state[f"L{i}.{stat}"] = (BN_MOMENTUM * old
                                                      + (1 - BN_MOMENTUM) * batch_value.detach())
            elif kind == "dropout":
                h = h * torch.tensor(masks[f"L{i}.mask"], dtype=torch.float64)
            else:
                raise NotImplementedError(f"layer kind {kind}")
            self.acts[f"L{i}.act"] = h
            nxt = self.layers[i + 1]["kind"] if i + 1 < len(self.layers) else "output"
            if self.direct and kind != "output" and nxt in ("dense", "output", "conv", "loccon"):
                self.tops[i] = self.block
        return q

    def objective(self, q, loss):
        """What autograd differentiates: the loss, plus (direct) sum(h_top * e B) for
        every block top, e = dL/dQ held fixed, so that the top's gradient is e B."""
        if not self.direct:
            return loss
        e = torch.autograd.grad(loss, q, retain_graph=True)[0].detach()
        extra = 0.0
        for top, owner in self.tops.items():
            B = self.p[f"L{owner}.feedback"]
            h = self.acts[f"L{top}.act"]
            extra = extra + (h * (e @ B.reshape(B.shape[0], -1)).reshape(h.shape)).sum()
        return loss + extra

    def loss(self, q, labels, actions):
        nb = q.shape[0]
        labels = torch.tensor(labels, dtype=torch.long)
        if self.model["rule"] == "brainprop":
            a = torch.tensor(actions, dtype=torch.long)
            r = (a == labels).to(torch.float64)
            qa = q[torch.arange(nb), a]
            self.rpe = (r - qa).detach()
            return (0.5 * (r - qa) ** 2).sum() / nb
        return F.cross_entropy(q, labels, reduction="mean")


class Report:
    def __init__(self):
        self.failed = 0
        self.lines = 0

    def line(self, ok, what, name, err, tol, extra=""):
        tag = "ok  " if ok is True else ("info" if ok is None else "FAIL")
        if ok is False:
            self.failed += 1
        self.lines += 1
        print(f"{tag} {what:7s} {name:24s} max err {err:.3e}  tol {tol:.3e}{extra}")

    def value(self, name, bpc, ref, what="value", info=False):
        bpc = np.asarray(bpc, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if bpc.shape != ref.shape:
            self.line(False if not info else None, what, name, float("inf"), 0.0,
                      f"  shape {bpc.shape} vs torch {ref.shape}")
            return
        scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, TINY)
        err = float(np.max(np.abs(bpc - ref))) if ref.size else 0.0
        tol = REL * scale
        ok = None if info else bool(err <= tol)
        self.line(ok, what, name, err, tol, f"  (|torch|_inf {scale:.3e})")

    def update(self, name, before, after_bpc, after_ref):
        d_bpc = np.asarray(after_bpc, np.float64) - np.asarray(before, np.float64)
        d_ref = np.asarray(after_ref, np.float64) - np.asarray(before, np.float64)
        dscale = float(np.max(np.abs(d_ref)))
        floor = F32_ULP * float(np.max(np.abs(after_bpc)))
        err = float(np.max(np.abs(d_bpc - d_ref)))
        tol = REL_UPDATE * dscale + floor
        self.line(bool(err <= tol), "update", name, err, tol, f"  (|D_torch|_inf {dscale:.3e})")


def main(argv):
    if len(argv) != 2:
        print("usage: torch_step.py OUTDIR (written by build/oracle_dump)", file=sys.stderr)
        return 2
    d = argv[1]
    with open(f"{d}/model.json") as f:
        model = json.load(f)
    before = read_safetensors(f"{d}/before.safetensors")
    after = read_safetensors(f"{d}/after.safetensors")
    batch = read_safetensors(f"{d}/batch.safetensors")
    nb, lr, l2, rule = model["nb"], float(model["lr"]), float(model.get("l2", 0.0)), model["rule"]
    masks = {k: v for k, v in batch.items() if k.endswith(".mask")}
    print(f"torch_step: {model['model']} ({model['path']}), rule {rule}, nb {nb}, lr {lr!r}, "
          f"seed {model['seed']}, step {model['step']}, torch {torch.__version__}, float64")
    rep = Report()

    # sanity of what bpc exported: the masks and the actions
    for L in model["layers"]:
        if L["kind"] == "dropout":
            m = masks[f"L{L['index']}.mask"]
            keep = 1.0 / (1.0 - L["rate"])
            bad = np.minimum(np.abs(m), np.abs(m - keep)).max()
            rep.line(bool(bad <= 1e-6 * keep), "mask", f"L{L['index']}.mask", float(bad), 1e-6 * keep,
                     f"  (values 0 or {keep:.6g}; dropped {np.mean(m == 0):.3f}, rate {L['rate']:.3g})")
    classes = model["layers"][-1]["units"]
    acts = batch["actions"]
    if rule == "brainprop":
        explored = int((acts != after["q"].argmax(axis=1)).sum())
        rep.line(bool(((acts >= 0) & (acts < classes)).all()), "actions", "actions", 0.0, 0.0,
                 f"  (rewarded {int((acts == batch['labels']).sum())}/{nb}, not greedy {explored}/{nb})")

    twin = Twin(model, before)
    q = twin.forward(batch["x"], masks)
    loss = twin.loss(q, batch["labels"], acts)
    trainable = [n for n, t in twin.p.items() if t.requires_grad]
    grads = torch.autograd.grad(twin.objective(q, loss), [twin.p[n] for n in trainable])
    new = {}
    kp = {f"L{L['index']}": float(L["fb_decay"]) for L in model["layers"]
          if L["feedback"] == "kolen_pollack"}
    for n, g in zip(trainable, grads):
        w = twin.p[n].detach()
        layer = n.split(".")[0]
        shrink = 2 * l2 + kp.get(layer, 0.0) if n.endswith(".weight") else 0.0
        new[n] = w - lr * (g + shrink * w)
        if n.endswith(".weight") and f"{layer}.feedback" in twin.p and layer in kp:
            B = twin.p[f"{layer}.feedback"].detach()   # kolen_pollack: W's own update
            new[f"{layer}.feedback"] = B - lr * (g + shrink * B)
    for n, t in twin.p.items():       # fixed feedback matrices stay as they were
        if n.endswith(".feedback") and n not in new:
            new[n] = t.detach()
    new.update(twin.new_state)

    # the step's results: every tensor of the plan
    for name in before:
        if name not in new:
            rep.line(False, "value", name, float("inf"), 0.0, "  (not modelled by the twin)")
            continue
        if name not in after:
            rep.line(False, "value", name, float("inf"), 0.0, "  (missing in after.safetensors)")
            continue
        ref = new[name].numpy()
        rep.value(name, after[name], ref)
        rep.update(name, before[name], after[name], ref)
    rep.value("loss", batch["loss"], loss.item())
    rep.value("q", after["q"], q.detach().numpy())
    if rule == "brainprop":
        rep.value("rpe", after["rpe"], twin.rpe.numpy())
    # forward activations of every layer (localises a mismatch)
    for name, h in twin.acts.items():
        if name in after:
            rep.value(name, after[name], h.detach().numpy(), what="act")
    # feedback buffers: dL/d(act) up to bpc's own scaling convention, information only
    # (a second forward pass, with the activations' gradients retained)
    fb_names = [n for n in after if n.endswith(".fb")]
    q2 = Twin(model, before)
    qq = q2.forward(batch["x"], masks)
    for h in q2.acts.values():
        if h.requires_grad:
            h.retain_grad()
    q2.objective(qq, q2.loss(qq, batch["labels"], acts)).backward()
    relu = {f"L{L['index']}" for L in model["layers"] if L["relu"]}
    for n in fb_names:
        h = q2.acts.get(n[:-3] + ".act")
        if h is not None and h.grad is not None:
            g = h.grad.numpy()
            if n[:-3] in relu:   # bpc keeps dL/d(pre-activation) there: gated by ReLU'
                g = g * (h.detach().numpy() > 0)
            rep.value(n, after[n], g, what="fb", info=True)

    print(f"torch_step: {rep.lines} checks, {rep.failed} failed")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
