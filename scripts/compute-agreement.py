#!/usr/bin/env python3
"""What --compute bf16 costs in agreement with the exact path, through the CLI.

For each model and image: `caption --dump` in both modes (max |Δ| of the
prefill's last-position logits, also as a share of max |logit|) and `find
--top-k 100` in both modes (caption identity; per ranked noun, the overlap of
the two top-100 neuron sets, over the nouns of the caption both modes
generated up to their first differing token, matched by step and token).

  python3 scripts/compute-agreement.py --binary build/mmneuron \\
      --model DIR [--model DIR ...] --images IMG [IMG ...] [--tokens all|nouns]

Plain Python (no numpy): reads the float32 .npy files itself.
"""
import argparse
import ast
import json
import os
import struct
import subprocess
import sys
import tempfile


def read_npy_f32(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        sys.exit(f"{path}: not an .npy file")
    major = data[6]
    hlen = struct.unpack("<H", data[8:10])[0] if major == 1 else struct.unpack("<I", data[8:12])[0]
    start = 10 if major == 1 else 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        sys.exit(f"{path}: expected little-endian float32 in C order, got {header}")
    body = data[start + hlen:]
    return list(struct.unpack(f"<{len(body) // 4}f", body)), header["shape"]


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}")
    return p.stdout


def find_result(binary, model, image, compute, tokens, tmp):
    out = os.path.join(tmp, f"find-{compute}")
    run([binary, "find", "--model", model, "--image", image, "--out", out, "--top-k", "100", "--report", "10",
         "--tokens", tokens, "--max-new-tokens", "12", "--quiet", "--compute", compute])
    sub = [d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))]
    if len(sub) != 1:
        sys.exit(f"{out}: expected one image directory, found {sub}")
    d = os.path.join(out, sub[0])
    with open(os.path.join(d, "result.json")) as f:
        res = json.load(f)
    tops = []
    if os.path.exists(os.path.join(d, "neurons.npy")):
        flat, shape = read_npy_f32(os.path.join(d, "neurons.npy"))
        n, k, _ = shape
        for i in range(n):
            tops.append({(int(flat[(i * k + j) * 3]), int(flat[(i * k + j) * 3 + 1])) for j in range(k)})
    return res, tops


def compare(binary, model, image, tokens):
    with tempfile.TemporaryDirectory() as tmp:
        logits = {}
        for c in ("exact", "bf16"):
            dump = os.path.join(tmp, f"dump-{c}")
            log = run([binary, "caption", "--model", model, "--image", image, "--max-new-tokens", "1", "--compute", c,
                       "--dump", dump])
            if "--compute bf16" in log:
                sys.exit(f"bf16 is unavailable here: {log.strip()}")
            logits[c], _ = read_npy_f32(os.path.join(dump, "logits_prefill_last.npy"))
        err = max(abs(a - b) for a, b in zip(logits["exact"], logits["bf16"]))
        scale = max(abs(a) for a in logits["exact"])
        (re_, te), (rb, tb) = (find_result(binary, model, image, c, tokens, tmp) for c in ("exact", "bf16"))
    ge, gb = re_["generated_ids"], rb["generated_ids"]
    agree = 0
    while agree < min(len(ge), len(gb)) and ge[agree] == gb[agree]:
        agree += 1
    keyed_b = {(n["step"], n["token_id"]): i for i, n in enumerate(rb["nouns"])}
    overlaps = []
    for i, n in enumerate(re_["nouns"]):
        j = keyed_b.get((n["step"], n["token_id"]))
        if n["step"] < agree and j is not None:
            overlaps.append(len(te[i] & tb[j]) / max(1, min(len(te[i]), len(tb[j]))))
    return {"model": os.path.basename(model.rstrip("/")), "image": os.path.basename(image),
            "logits_max_abs": err, "logits_max_abs_rel": err / scale if scale else 0.0,
            "caption_identical": ge == gb, "nouns_compared": len(overlaps),
            "overlap_min": min(overlaps) if overlaps else None,
            "overlap_mean": sum(overlaps) / len(overlaps) if overlaps else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build/mmneuron")
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--images", nargs="+", required=True)
    ap.add_argument("--tokens", default="nouns", choices=["nouns", "all"])
    a = ap.parse_args()
    for m in a.model:
        for im in a.images:
            print(json.dumps(compare(a.binary, m, im, a.tokens)), flush=True)


if __name__ == "__main__":
    main()
