#!/usr/bin/env python3
"""Agreement of int8 weights (mmneuron quantize) with the unquantized model.

For each model: quantize it, caption every image with both models (greedy)
and run find with both; report the caption identity rate and, per ranked
token (noun, or every generated token with --tokens all) that both runs rank
after the same caption prefix, the overlap of the two top-100 neuron sets.
Standard library only (neurons.npy is parsed by hand).

Usage: scripts/int8_agreement.py [--bin build/mmneuron] [--out out/int8-agreement]
       [--images assets/scenes/images] [MODEL[:nouns|all] ...]
Default models: models/shapes-llava (nouns) and the golden tiny models in
../shared/golden/models (all tokens: their captions have no nouns).
"""
import argparse, ast, glob, json, os, shutil, struct, subprocess, sys


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("failed: " + " ".join(cmd) + "\n" + p.stdout)
    return p.stdout


def read_npy_f32(path):
    """(shape, flat list) of a float32 C-order .npy (format 1.0)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(path + ": not an .npy file")
    hlen = struct.unpack("<H", data[8:10])[0]
    header = ast.literal_eval(data[10:10 + hlen].decode("latin1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], path
    shape = header["shape"]
    n = 1
    for s in shape:
        n *= s
    vals = struct.unpack("<%df" % n, data[10 + hlen:10 + hlen + 4 * n])
    return shape, vals


def ranked(run_dir):
    """{(image id, generated ids up to and including the ranked step): set of
    (layer, unit) of the top-k}: two runs' entries are compared only where the
    captions agree up to that token (the same rows were scored)."""
    out = {}
    for res in glob.glob(os.path.join(run_dir, "*", "result.json")):
        d = os.path.dirname(res)
        r = json.load(open(res))
        if not r.get("nouns"):
            continue
        shape, v = read_npy_f32(os.path.join(d, "neurons.npy"))
        nn, k, _ = shape
        for i, noun in enumerate(r["nouns"]):
            out[(r["id"], tuple(r["generated_ids"][:noun["step"] + 1]))] = {
                (int(v[(i * k + j) * 3]), int(v[(i * k + j) * 3 + 1])) for j in range(k)}
    return out


def captions(run_dir):
    return {json.load(open(p))["id"]: json.load(open(p))["caption"]
            for p in glob.glob(os.path.join(run_dir, "*", "result.json"))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/mmneuron")
    ap.add_argument("--out", default="out/int8-agreement")
    ap.add_argument("--images", default="assets/scenes/images")
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    models = a.models or ["models/shapes-llava:nouns"] + [
        m + ":all" for m in sorted(glob.glob("../shared/golden/models/*"))]
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for spec in models:
        path, _, tokens = spec.partition(":")
        tokens = tokens or "nouns"
        name = os.path.basename(path.rstrip("/"))
        work = os.path.join(a.out, name)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        q8 = os.path.join(work, "q8")
        run([a.bin, "quantize", "--quiet", "--model", path, "--out", q8])
        runs = {}
        for tag, m in (("orig", path), ("int8", q8)):
            runs[tag] = os.path.join(work, "run-" + tag)
            run([a.bin, "find", "--model", m, "--images", a.images, "--out", runs[tag], "--tokens", tokens,
                 "--top-k", str(a.top_k), "--quiet"])
        ca, cb = captions(runs["orig"]), captions(runs["int8"])
        same = sum(ca[i] == cb.get(i) for i in ca)
        ra, rb = ranked(runs["orig"]), ranked(runs["int8"])
        both = [key for key in ra if key in rb]
        overlaps = [len(ra[key] & rb[key]) / len(ra[key]) for key in both]
        mean = sum(overlaps) / len(overlaps) if overlaps else float("nan")
        low = min(overlaps) if overlaps else float("nan")
        rows.append((name, tokens, same, len(ca), len(both), len(ra), mean, low))
        print("%-22s %-5s captions identical %d/%d; top-%d overlap over %d/%d ranked tokens: mean %.3f, min %.3f"
              % (name, tokens, same, len(ca), a.top_k, len(both), len(ra), mean, low), flush=True)
    with open(os.path.join(a.out, "agreement.md"), "w") as f:
        f.write("| model | ranked | identical captions | tokens compared | top-%d overlap mean | min |\n" % a.top_k)
        f.write("|---|---|---|---|---|---|\n")
        for name, tokens, same, n, nb, na, mean, low in rows:
            f.write("| %s | %s | %d/%d | %d/%d | %.3f | %.3f |\n" % (name, tokens, same, n, nb, na, mean, low))


if __name__ == "__main__":
    main()
