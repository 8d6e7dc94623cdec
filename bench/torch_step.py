#!/usr/bin/python3
"""torch_step.py: the PyTorch side of `make bench`: one bpc model and rule, written in
PyTorch float32 the way a user would, timed per training step on the CPU (or, with
--device cuda, on the GPU: eager PyTorch, each step waited for).

    /usr/bin/python3 bench/torch_step.py LAYERS.json [--threads N] [--steps N]
                                         [--warmup N] [--seed S] [--device cpu|cuda]
                                         [--serve]

LAYERS.json is what `build/bench_step --layers-json` writes (the IR's layer list, in
the schema of tests/oracle/dump.c's model.json, plus lr, l2, init_std). The network is
the one of tests/oracle/torch_step.py's twin, but built from stock modules in PyTorch's
own NCHW layout (Conv2d, BatchNorm2d, Dropout, Linear, all without bias; loccon as
unfold + one batched matmul over the output positions), in float32 and training mode,
so that bpc is compared with a competent PyTorch version rather than with the oracle's
slow, checkable one. The flattening order before `dense` differs from bpc's NHWC,
which permutes the dense weights and changes nothing in the work done.

One step, as bpc's `train` program: uint8 input / 255, forward, the rule, backward,
SGD (torch.optim.SGD; weight decay 2*l2 on the weights, as bpc's L2 term l2*sum(w^2)).
  BrainProp: max-Boltzmann action (greedy with probability 1 - epsilon, otherwise
             drawn from softmax(Q)), reward r = [a == label], loss
             (1/nb) sum_b 1/2 (r_b - Q[b, a_b])^2 with the action held fixed;
  EBP:       mean cross-entropy of softmax(Q).
Inputs are synthetic: random uint8 pixels of the model's shape, cycling labels.

Without --serve: warm-up, N timed steps, one JSON object on stdout. With --serve (used
by bench/run.py): a set-up line after the warm-up, then per stdin line "N" the answer
{"times_ms": [...]}, and on "quit" or EOF the final object (peak RSS, loss).
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def same_pad(n, k, s):
    """TensorFlow 'same': (before, after) padding along one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pads(L):
    """(left, right, top, bottom) padding of layer L, as F.pad takes it."""
    if not L["pad_same"]:
        return (0, 0, 0, 0)
    k, s = L["ksize"], L["stride"]
    pt, pb = same_pad(L["in"][0], k, s)
    pl, pr = same_pad(L["in"][1], k, s)
    return (pl, pr, pt, pb)


class Pad(nn.Module):
    def __init__(self, p, value=0.0):
        super().__init__()
        self.p, self.value = p, value

    def forward(self, x):
        return F.pad(x, self.p, value=self.value)


class LocCon(nn.Module):
    """Locally connected 2-D layer: untied weights per output position, no bias.
    unfold gives [nb, Cin*K*K, P]; one bmm over P of [P, nb, CKK] x [P, CKK, F]."""

    def __init__(self, L, std):
        super().__init__()
        cin, k, f = L["in"][2], L["ksize"], L["out"][2]
        self.ho, self.wo, self.k, self.s = L["out"][0], L["out"][1], k, L["stride"]
        self.weight = nn.Parameter(torch.randn(self.ho * self.wo, cin * k * k, f) * std)

    def forward(self, x):
        nb = x.shape[0]
        cols = F.unfold(x, self.k, stride=self.s)                 # [nb, CKK, P]
        y = torch.bmm(cols.permute(2, 0, 1), self.weight)         # [P, nb, F]
        return y.permute(1, 2, 0).reshape(nb, -1, self.ho, self.wo)


def build(model):
    """nn.Sequential of the layer list (after the input layer); NCHW until `dense`."""
    std = float(model["init_std"])
    mods = []
    flat = False
    for L in model["layers"][1:]:
        kind = L["kind"]
        if kind in ("dense", "output"):
            if not flat:
                mods.append(nn.Flatten())
                flat = True
            n_in = L["in"][0] * L["in"][1] * L["in"][2]
            lin = nn.Linear(n_in, L["units"], bias=False)
            nn.init.normal_(lin.weight, 0.0, std)
            mods.append(lin)
            if kind == "dense" and L["relu"]:
                mods.append(nn.ReLU(inplace=True))
        elif kind in ("conv", "loccon"):
            p = pads(L)
            if kind == "conv":
                sym = p[0] == p[1] and p[2] == p[3]
                if not sym:
                    mods.append(Pad(p))
                conv = nn.Conv2d(L["in"][2], L["units"], L["ksize"], stride=L["stride"],
                                 padding=(p[2], p[0]) if sym else 0, bias=False)
                nn.init.normal_(conv.weight, 0.0, std)
                mods.append(conv)
            else:
                if any(p):
                    mods.append(Pad(p))
                mods.append(LocCon(L, std))
            if L["relu"]:
                mods.append(nn.ReLU(inplace=True))
        elif kind == "maxpool":
            p = pads(L)
            if any(p):
                mods.append(Pad(p, float("-inf")))
            mods.append(nn.MaxPool2d(L["ksize"], stride=L["stride"]))
        elif kind == "batchnorm":
            c = L["out"][2]
            mods.append(nn.BatchNorm1d(c, eps=1e-3, momentum=0.01) if flat
                        else nn.BatchNorm2d(c, eps=1e-3, momentum=0.01))
        elif kind == "dropout":
            mods.append(nn.Dropout(L["rate"]))
        else:
            raise NotImplementedError(f"layer kind {kind}")
    return nn.Sequential(*mods)


class Step:
    def __init__(self, model, seed, device, tf32=False):
        torch.manual_seed(seed)
        self.dev = torch.device(device)
        if self.dev.type == "cuda":
            # full float32 like bpc's ieee mode (cuDNN would use TF32 for convolutions by
            # default), or with tf32 TF32 for both matmuls and convolutions, against
            # bpc's tf32 mode; cuDNN's fastest algorithm for each shape, found in the
            # warm-up
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        self.net = build(model).train().to(self.dev)
        self.rule = model["rule"]
        self.nb = nb = int(model["nb"])
        out = model["layers"][-1]
        self.eps = float(out["epsilon"])
        h, w, c = model["layers"][0]["out"]
        self.x = torch.randint(0, 256, (nb, c, h, w), dtype=torch.uint8).to(self.dev)
        self.y = (torch.arange(nb) * 7 % out["units"]).to(self.dev)
        lr, l2 = float(model["lr"]), float(model["l2"])
        weights = [p for n, p in self.net.named_parameters() if n.endswith("weight") and p.dim() > 1]
        others = [p for n, p in self.net.named_parameters() if not (n.endswith("weight") and p.dim() > 1)]
        groups = [{"params": weights, "weight_decay": 2 * l2}]
        if others:
            groups.append({"params": others, "weight_decay": 0.0})
        self.opt = torch.optim.SGD(groups, lr=lr)

    def __call__(self):
        self.opt.zero_grad(set_to_none=True)
        q = self.net(self.x.float().div_(255.0))
        if self.rule == "brainprop":
            with torch.no_grad():
                greedy = q.argmax(1)
                drawn = torch.multinomial(torch.softmax(q, 1), 1).squeeze(1)
                a = torch.where(torch.rand(self.nb, device=self.dev) < self.eps, drawn, greedy)
                r = (a == self.y).float()
            qa = q.gather(1, a[:, None]).squeeze(1)
            loss = 0.5 * ((r - qa) ** 2).sum() / self.nb
        else:
            loss = F.cross_entropy(q, self.y)
        loss.backward()
        self.opt.step()
        if self.dev.type == "cuda":
            torch.cuda.synchronize()  # the step is done when the GPU is
        return loss


def timed(step, n):
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        t.append((time.perf_counter() - t0) * 1e3)
    return t


def emit(obj):
    print(json.dumps(obj), flush=True)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("layers_json")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--tf32", action="store_true", help="cuda: TF32 matmuls and convolutions")
    a = ap.parse_args(argv[1:])
    if a.device == "cuda" and not torch.cuda.is_available():
        print("torch_step.py: --device cuda: this PyTorch sees no GPU "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda})", file=sys.stderr)
        return 2
    try:
        with open(a.layers_json) as f:
            model = json.load(f)
    except (OSError, ValueError) as e:
        print(f"torch_step.py: {a.layers_json}: cannot read the layer list: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    base_rss = peak_rss_mb()
    step = Step(model, a.seed, a.device, a.tf32)
    for _ in range(a.warmup):
        step()
    head = {"model": model["model"], "rule": model["rule"], "target": a.device,
            "inputs": "synthetic", "impl": "pytorch", "torch": torch.__version__,
            "batch": step.nb, "threads": torch.get_num_threads(), "tf32": a.tf32,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "warmup_steps": a.warmup, "import_rss_mb": base_rss}
    if a.serve:
        emit(head)
        for line in sys.stdin:
            if line.startswith("quit"):
                break
            emit({"times_ms": timed(step, int(line))})
        out = {}
    else:
        t = sorted(timed(step, a.steps))
        out = dict(head, times_ms=t, ms_per_step_median=t[len(t) // 2] if len(t) % 2
                   else (t[len(t) // 2 - 1] + t[len(t) // 2]) / 2)
    out["peak_rss_mb"] = peak_rss_mb()
    out["loss"] = float(step())
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
