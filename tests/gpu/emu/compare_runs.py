#!/usr/bin/env python3
"""Compares two stretch training runs (tests/gpu/emu/test_emu_stretch.sh).

  compare_runs.py RUN_DIR REF_DIR TOL [STEP] [--moments]

The loss of every step row of metrics.jsonl (relative to REF's), and every
/params tensor of the checkpoint of step STEP (default: each run's latest;
with --moments also every /optim/m and /optim/v tensor, the AdamW moments):
max |a - b| / max |b| per tensor. Fails (exit 1) beyond TOL; TOL 0 means
bitwise. The checkpoints are read with h5dump (hdf5-tools), no h5py needed.
"""
import json
import os
import re
import subprocess
import sys


def losses(run):
    out = {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            if e.get("event") == "step":
                out[e["step"]] = e["loss"]
    return out


def ckpt(run, step):
    if step is None:
        with open(os.path.join(run, "latest")) as f:
            return os.path.join(run, f.read().strip())
    return os.path.join(run, "ckpt-%08d.h5" % step)


def params(path, group="/params"):
    # h5dump -m %a: hexadecimal floats, exact.
    txt = subprocess.run(["h5dump", "-g", group, "-y", "-w", "0", "-m", "%a", path],
                         check=True, capture_output=True, text=True).stdout
    out = {}
    for m in re.finditer(r'DATASET "([^"]+)" \{.*?DATA \{(.*?)\}', txt, re.S):
        out[group + "/" + m.group(1)] = [float.fromhex(v) for v in m.group(2).replace(",", " ").split()]
    if not out:
        sys.exit("compare_runs: no %s tensors in %s" % (group, path))
    return out


def main():
    args = [a for a in sys.argv[1:] if a != "--moments"]
    groups = ["/params"] + (["/optim/m", "/optim/v"] if "--moments" in sys.argv else [])
    run, ref, tol = args[0], args[1], float(args[2])
    step = int(args[3]) if len(args) > 3 else None
    bad = 0
    la, lb = losses(run), losses(ref)
    common = sorted(set(la) & set(lb))
    worst_l = 0.0
    for s in common:
        if step is not None and s > step:
            continue
        r = abs(la[s] - lb[s]) / abs(lb[s])
        worst_l = max(worst_l, r)
        if r > tol:
            print("FAIL: step %d loss %.9g vs %.9g (rel %.2e > %g)" % (s, la[s], lb[s], r, tol))
            bad += 1
    pa, pb = {}, {}
    for g in groups:
        pa.update(params(ckpt(run, step), g))
        pb.update(params(ckpt(ref, step), g))
    if set(pa) != set(pb):
        print("FAIL: the checkpoints hold different tensors")
        return 1
    worst, which = 0.0, "-"
    for name in sorted(pb):
        a, b = pa[name], pb[name]
        scale = max(abs(x) for x in b) or 1.0
        d = max(abs(x - y) for x, y in zip(a, b)) / scale
        if d > worst:
            worst, which = d, name
    print("%s vs %s: loss rel %.2e over steps %s; %s worst max-rel %.2e (%s)"
          % (run, ref, worst_l, ",".join(str(s) for s in common if step is None or s <= step),
             " + ".join(g[1:] for g in groups), worst, which))
    if worst > tol:
        print("FAIL: params differ beyond %g" % tol)
        bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
