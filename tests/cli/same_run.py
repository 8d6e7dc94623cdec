#!/usr/bin/python3
"""same_run.py: two bpc run folders hold the same run, bit for bit.

    /usr/bin/python3 tests/cli/same_run.py RUN_A RUN_B

Compares the tensors of last.safetensors and of best.safetensors byte for byte (names,
dtypes, shapes, data; not the metadata, which holds timings), the metadata that does
not depend on time (epoch, steps, early-stopping state, accuracies), every line of
metrics.jsonl except "seconds", and summary.json except "seconds_per_epoch". Prints
what differs; exit status 1 if anything does.
"""
import json
import sys

import st_file

TIMED = {"saved_at", "epoch_seconds", "train_seconds", "seconds", "seconds_per_epoch",
         "source_file", "data_dir"}


def main():
    a, b = sys.argv[1:3]
    bad = 0
    for ck in ("last", "best"):
        ta, ma = st_file.tensors(f"{a}/{ck}.safetensors")
        tb, mb = st_file.tensors(f"{b}/{ck}.safetensors")
        if ta.keys() != tb.keys():
            print(f"FAIL {ck}: tensor names differ")
            bad += 1
        for name in sorted(ta.keys() & tb.keys()):
            if ta[name] != tb[name]:
                print(f"FAIL {ck}: tensor {name} differs")
                bad += 1
        for k in sorted((ma.keys() | mb.keys()) - TIMED):
            if ma.get(k) != mb.get(k):
                print(f"FAIL {ck}: metadata {k}: {ma.get(k)!r} vs {mb.get(k)!r}")
                bad += 1
        print(f"     {ck}: {len(ta)} tensors compared, epoch {ma.get('epoch')}")
    la = [json.loads(line) for line in open(f"{a}/metrics.jsonl")]
    lb = [json.loads(line) for line in open(f"{b}/metrics.jsonl")]
    if len(la) != len(lb):
        print(f"FAIL metrics.jsonl: {len(la)} vs {len(lb)} lines")
        bad += 1
    for x, y in zip(la, lb):
        x.pop("seconds", None)
        y.pop("seconds", None)
        if x != y:
            print(f"FAIL metrics.jsonl: {x} vs {y}")
            bad += 1
    sa = json.load(open(f"{a}/summary.json"))
    sb = json.load(open(f"{b}/summary.json"))
    for s in (sa, sb):
        s.pop("seconds_per_epoch", None)
    if sa != sb:
        print(f"FAIL summary.json: {sa} vs {sb}")
        bad += 1
    if not bad:
        print(f"ok   {a} and {b}: the same run ({len(la)} epochs)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
