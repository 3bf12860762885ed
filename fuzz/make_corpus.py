#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<harness>/ (Python stdlib only).

Each harness gets a few valid minimal inputs and the hostile cases of issue 10
(deep nesting, floats and huge numbers for integers, overflowing shapes, empty
and misaligned tensors, overlaps hidden behind an empty tensor, token ids near
INT32_MAX, non-string captions, wrong JSON types, sizes demanding gigabytes).
JPEG seeds come from fuzz/jpeg_seeds.c (libjpeg), compiled here when a C
compiler is available. Regression inputs of fixed findings (crash-*) are
added by hand and are not touched by this script.

Usage: python3 fuzz/make_corpus.py   (rewrites only the files it generates)
"""
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import types
import zipfile
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")
MODEL = os.path.join(os.path.dirname(ROOT), "models", "shapes-llava")
SEP = b"\n@@@@\n"  # part separator of the multi-file harnesses (fuzz_common.h)


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def parts(*ps):
    return SEP.join(p.encode() if isinstance(p, str) else p for p in ps)


def nested(depth, leaf="0"):
    return "[" * depth + leaf + "]" * depth


def j(v):
    return json.dumps(v)


# ------------------------------------------------------------------ npy

def npy(descr, shape, payload=b"", version=1, fortran=False, raw_shape=None):
    sh = raw_shape or "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", sh)
    pre = 10 if version == 1 else 12
    h += " " * ((64 - (pre + len(h) + 1) % 64) % 64) + "\n"
    out = b"\x93NUMPY" + bytes([version, 0])
    out += struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return out + h.encode() + payload


def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


def seeds_npy():
    put("fuzz_npy", "valid-f4-2x3.npy", npy("<f4", (2, 3), f32(1, 2, 3, 4, 5, 6)))
    put("fuzz_npy", "valid-i8.npy", npy("<i8", (3,), struct.pack("<3q", 1, -2, 3)))
    put("fuzz_npy", "valid-u1-scalar.npy", npy("|u1", (), b"\x07"))
    put("fuzz_npy", "valid-f8-v2.npy", npy("<f8", (2,), struct.pack("<2d", 0.5, 1e300), version=2))
    put("fuzz_npy", "empty-0x3.npy", npy("<f4", (0, 3)))
    put("fuzz_npy", "nasty-shape-product-overflow.npy", npy("<f4", (4294967296, 4294967296, 16), f32(1)))
    put("fuzz_npy", "nasty-huge-dim-digits.npy", npy("<f4", (), raw_shape="(99999999999999999999999,)"))
    put("fuzz_npy", "nasty-zero-times-huge.npy", npy("<i4", (0, 1 << 39)))
    put("fuzz_npy", "nasty-fortran.npy", npy("<f4", (1,), f32(1), fortran=True))
    put("fuzz_npy", "nasty-big-endian.npy", npy(">f4", (1,), b"\0\0\0\1"))
    put("fuzz_npy", "nasty-bad-descr.npy", npy("<fX", (1,), f32(1)))
    put("fuzz_npy", "nasty-truncated-data.npy", npy("<f4", (100,), f32(1, 2)))
    put("fuzz_npy", "nasty-no-shape.npy", b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'fortran_ord':}\n")
    put("fuzz_npy", "nasty-header-past-end.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{")


# ------------------------------------------------------------------ safetensors

def safetensors(header, data=b"", align=True, pad_to=None):
    h = json.dumps(header, separators=(",", ":")).encode()
    if align:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    if pad_to is not None:  # header length such that (8 + len) % 8 == pad_to
        while (8 + len(h)) % 8 != pad_to:
            h += b" "
    return struct.pack("<Q", len(h)) + h + data


def raw_header(text):
    return struct.pack("<Q", len(text)) + text.encode()


def t(dtype, shape, b, e):
    return {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}


def seeds_safetensors():
    h = "fuzz_safetensors"
    put(h, "valid-f32.safetensors", safetensors({"w": t("F32", [2, 2], 0, 16)}, f32(1, 2, 3, 4)))
    put(h, "valid-mixed-meta.safetensors",
        safetensors({"__metadata__": {"format": "pt"}, "a": t("F32", [2], 0, 8), "b": t("BF16", [3], 8, 14),
                     "c": t("U8", [2], 14, 16)}, f32(1, 2) + b"\x80\x3f" * 3 + b"\1\2"))
    put(h, "empty-tensor-only.safetensors", safetensors({"e": t("F32", [0], 0, 0)}))
    put(h, "empty-tensor-among.safetensors",
        safetensors({"a": t("F32", [1], 0, 4), "e": t("BF16", [0, 5], 4, 4)}, f32(1)))
    # A [0,16) and C [12,28) overlap; the empty E at 8 sorts between them.
    put(h, "nasty-overlap-behind-empty.safetensors",
        safetensors({"A": t("F32", [4], 0, 16), "E": t("F32", [0], 8, 8), "C": t("F32", [4], 12, 28)}, bytes(28)))
    put(h, "nasty-overlap.safetensors", safetensors({"A": t("F32", [4], 0, 16), "B": t("F32", [2], 8, 16)}, bytes(16)))
    # Data section starting at an odd address: the BF16 tensor is misaligned.
    put(h, "nasty-misaligned-bf16.safetensors", safetensors({"b": t("BF16", [4], 0, 8)}, b"\x80\x3f" * 4, align=False, pad_to=1))
    put(h, "nasty-misaligned-f32.safetensors", safetensors({"u": t("U8", [1], 0, 1), "f": t("F32", [2], 1, 9)}, b"\7" + f32(1, 2)))
    put(h, "nasty-shape-overflow.safetensors", safetensors({"w": t("F32", [1 << 40, 1 << 40], 0, 4)}, f32(1)))
    put(h, "nasty-shape-float.safetensors", safetensors({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}, f32(1)))
    put(h, "nasty-offsets-float.safetensors", safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}}, f32(1)))
    put(h, "nasty-offsets-reversed.safetensors", safetensors({"w": t("F32", [1], 8, 4)}, bytes(8)))
    put(h, "nasty-offsets-huge.safetensors", safetensors({"w": t("F32", [1], 18446744073709551612, 18446744073709551615)}, bytes(8)))
    put(h, "nasty-deep-metadata.safetensors", raw_header('{"__metadata__":{"x":' + nested(300) + "}}"))
    put(h, "nasty-header-length-huge.safetensors", struct.pack("<Q", 1 << 62) + b"{}")
    put(h, "nasty-header-array.safetensors", raw_header("[1,2,3]"))
    put(h, "nasty-dtype.safetensors", safetensors({"w": t("F8_E4M3", [1], 0, 1)}, b"\0"))


def shard(name, n):
    return safetensors({name: t("F32", [n], 0, 4 * n)}, bytes(4 * n))


def seeds_safetensors_index():
    h = "fuzz_safetensors_index"
    put(h, "valid.json", j({"metadata": {"total_size": 32}, "weight_map": {"a.weight": "a.safetensors", "b.weight": "b.safetensors"}}))
    put(h, "valid-one-shard.json", j({"weight_map": {"a.weight": "a.safetensors"}}))
    put(h, "nasty-traversal.json", j({"weight_map": {"a.weight": "../a.safetensors"}}))
    put(h, "nasty-absolute.json", j({"weight_map": {"a.weight": "/etc/passwd"}}))
    put(h, "nasty-dot.json", j({"weight_map": {"a.weight": "."}}))
    put(h, "nasty-empty-name.json", j({"weight_map": {"a.weight": ""}}))
    put(h, "nasty-missing-tensor.json", j({"weight_map": {"zz.weight": "a.safetensors"}}))
    put(h, "nasty-non-string.json", j({"weight_map": {"a.weight": 7}}))
    put(h, "nasty-map-array.json", j({"weight_map": ["a.safetensors"]}))
    put(h, "nasty-wrong-type.json", j([{"weight_map": {}}]))
    put(h, "nasty-empty-map.json", j({"weight_map": {}}))
    put(h, "nasty-deep.json", '{"metadata":' + nested(300) + ',"weight_map":{"a.weight":"a.safetensors"}}')


# ------------------------------------------------------------------ torch pickle

class _Storage:
    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel


def _fake_torch():
    """Just enough of a `torch` module for pickle to name its globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    torch._utils = utils

    def _rebuild_tensor_v2(*a):  # never called: only its name is pickled
        raise RuntimeError

    def _rebuild_parameter(*a):
        raise RuntimeError

    for fn in (_rebuild_tensor_v2, _rebuild_parameter):
        fn.__module__, fn.__qualname__ = "torch._utils", fn.__name__
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    utils._rebuild_parameter = _rebuild_parameter
    for name in ("FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "ByteStorage"):
        cls = type(name, (), {})
        cls.__module__ = "torch"
        setattr(torch, name, cls)
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return torch


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, {})

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def torch_zip(state, storages, prefix="archive", extra=None):
    import collections
    import io
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(collections.OrderedDict(state))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(zinfo(prefix + "/data.pkl"), buf.getvalue())
        z.writestr(zinfo(prefix + "/byteorder"), "little")
        for key, data in storages.items():
            z.writestr(zinfo(prefix + "/data/" + key), data)
        for name, data in (extra or {}).items():
            z.writestr(zinfo(name), data)
        z.writestr(zinfo(prefix + "/version"), "3\n")
    return out.getvalue()


def seeds_torch():
    h = "fuzz_torch_pickle"
    torch = _fake_torch()
    fs0 = _Storage(torch.FloatStorage, "0", 6)
    put(h, "valid-one-tensor.bin", torch_zip({"w": _Tensor(fs0, 0, [2, 3], [3, 1])}, {"0": f32(*range(6))}))
    put(h, "valid-shared-storage.bin",
        torch_zip({"a": _Tensor(fs0, 0, [3], [1]), "b": _Tensor(fs0, 3, [3], [1])}, {"0": f32(*range(6))}))
    hs = _Storage(torch.HalfStorage, "1", 3)
    put(h, "valid-half-offset.bin", torch_zip({"h": _Tensor(hs, 1, [2], [1]), "e": _Tensor(hs, 0, [0], [1])}, {"1": b"\0<" * 3}))
    put(h, "nasty-outside-storage.bin", torch_zip({"w": _Tensor(fs0, 4, [3], [1])}, {"0": f32(*range(6))}))
    put(h, "nasty-negative-size.bin", torch_zip({"w": _Tensor(fs0, 0, [-1], [1])}, {"0": f32(*range(6))}))
    put(h, "nasty-huge-shape.bin", torch_zip({"w": _Tensor(fs0, 0, [1 << 40, 1 << 40], [1 << 40, 1])}, {"0": f32(*range(6))}))
    put(h, "nasty-strided.bin", torch_zip({"w": _Tensor(fs0, 0, [3, 2], [1, 3])}, {"0": f32(*range(6))}))
    put(h, "nasty-storage-too-short.bin", torch_zip({"w": _Tensor(_Storage(torch.FloatStorage, "0", 1 << 40), 0, [2], [1])}, {"0": f32(1, 2)}))
    put(h, "nasty-missing-storage.bin", torch_zip({"w": _Tensor(_Storage(torch.FloatStorage, "9", 1), 0, [1], [1])}, {}))
    # Storage bytes misaligned for their dtype inside the archive.
    put(h, "nasty-misaligned.bin", torch_zip({"w": _Tensor(fs0, 0, [6], [1])}, {"0": f32(*range(6))}, prefix="a"))
    evil = (b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
    put(h, "nasty-global-os-system.bin", zip_raw({"archive/data.pkl": evil}))
    put(h, "nasty-deep-marks.bin", zip_raw({"archive/data.pkl": b"\x80\x02" + b"(" * 5000 + b"."}))
    put(h, "nasty-memo-get.bin", zip_raw({"archive/data.pkl": b"\x80\x02h\x07."}))
    put(h, "nasty-legacy.bin", b"\x80\x02\x8a\x0a" + b"\0" * 16)
    put(h, "nasty-not-dict.bin", zip_raw({"archive/data.pkl": b"\x80\x02]q\x00."}))


def zip_raw(entries):
    import io
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(zinfo(name), data)
    return out.getvalue()


def zinfo(name):
    """A stored entry with a fixed date, so the seeds are reproducible."""
    return zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))


# ------------------------------------------------------------------ images

def png(w, h, color_type, depth, rows_raw, plte=None, interlace=0, declared=None):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    dw, dh = declared or (w, h)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", dw, dh, depth, color_type, 0, 0, interlace))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    out += chunk(b"IDAT", zlib.compress(rows_raw, 9)) + chunk(b"IEND", b"")
    return out


def raw_rows(rows):
    return b"".join(b"\0" + r for r in rows)


def adam7(w, h, bpp, pixel):
    """Raw Adam7 data (filter 0) for 8/16-bit images; pixel(x, y) -> bytes."""
    out = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        xs = range(x0, w, dx)
        if not xs:
            continue
        for y in range(y0, h, dy):
            out += b"\0" + b"".join(pixel(x, y) for x in xs)
    return out


def seeds_image():
    h = "fuzz_image"
    put(h, "valid-gray8.png", png(5, 3, 0, 8, raw_rows([bytes(range(i * 5, i * 5 + 5)) for i in range(3)])))
    put(h, "valid-rgb8.png", png(4, 4, 2, 8, raw_rows([b"".join(bytes((x * 60, y * 60, 128)) for x in range(4)) for y in range(4)])))
    put(h, "valid-palette2-short-plte.png", png(6, 2, 3, 2, raw_rows([b"\x1b\x40", b"\xe4\xc0"]), plte=b"\xff\0\0\0\xff\0"))
    put(h, "valid-gray16.png", png(2, 2, 0, 16, raw_rows([b"\x00\x10\x01\x00", b"\xff\xff\x00\x00"])))
    put(h, "valid-rgba16-adam7.png",
        png(9, 9, 6, 16, adam7(9, 9, 8, lambda x, y: struct.pack(">4H", x * 7000, y * 7000, 30000, 65535)), interlace=1))
    put(h, "valid-gray-alpha.png", png(3, 1, 4, 8, raw_rows([b"\x10\xff\x80\x00\xff\x10"])))
    # Sizes that demand gigabytes from a few bytes.
    put(h, "nasty-png-16384sq-tiny.png", png(1, 1, 6, 16, raw_rows([bytes(8)]), declared=(16384, 16384)))
    put(h, "nasty-png-8192sq-adam7-tiny.png", png(1, 1, 6, 16, raw_rows([bytes(8)]), interlace=1, declared=(8192, 8192)))
    put(h, "nasty-png-too-wide.png", png(1, 1, 0, 8, raw_rows([b"\0"]), declared=(40000, 1)))
    put(h, "nasty-png-zero-width.png", png(1, 1, 0, 8, raw_rows([b"\0"]), declared=(0, 1)))
    put(h, "nasty-png-truncated.png", png(5, 3, 0, 8, raw_rows([bytes(5)] * 3))[:40])
    put(h, "nasty-png-palette-no-plte.png", png(2, 1, 3, 8, raw_rows([b"\0\1"])))
    put(h, "nasty-gif.gif", b"GIF89a\1\0\1\0\0\0\0;")
    jpeg_seeds(h)


def jpeg_seeds(h):
    src = os.path.join(ROOT, "jpeg_seeds.c")
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        print("no C compiler: JPEG seeds kept as they are", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "jpeg_seeds")
        subprocess.run([cc, "-O1", "-o", exe, src, "-ljpeg"], check=True)
        subprocess.run([exe, os.path.join(CORPUS, h)], check=True)


# ------------------------------------------------------------------ preprocessor config

def seeds_preprocessor():
    h = "fuzz_preprocessor"
    with open(os.path.join(MODEL, "preprocessor_config.json"), "rb") as f:
        put(h, "valid-bundled.json", f.read())
    put(h, "valid-clip.json", j({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 24},
                                  "crop_size": {"height": 16, "width": 16}, "do_center_crop": True, "resample": 3,
                                  "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    put(h, "valid-blip.json", j({"image_processor_type": "BlipImageProcessor", "size": {"height": 12, "width": 20}}))
    put(h, "valid-feature-extractor-ints.json", j({"feature_extractor_type": "CLIPFeatureExtractor", "size": 20, "crop_size": 18,
                                                    "image_mean": 0.5, "do_normalize": False}))
    put(h, "valid-no-resize-no-crop.json", j({"do_resize": False, "do_center_crop": False}))
    put(h, "nasty-size-gigapixel.json", j({"size": {"height": 100000, "width": 100000}, "image_processor_type": "BlipImageProcessor"}))
    put(h, "nasty-size-huge-int.json", '{"size": 99999999999999999999, "crop_size": 18446744073709551615}')
    put(h, "nasty-size-float.json", j({"size": 224.5, "crop_size": 1e300}))
    put(h, "nasty-size-negative.json", j({"size": {"shortest_edge": -224}}))
    put(h, "nasty-size-8192.json", j({"size": 8192, "crop_size": 8192, "do_center_crop": False}))
    put(h, "nasty-mean-wrong.json", j({"image_mean": [1, 2], "image_std": [0, 0, 0]}))
    put(h, "nasty-wrong-type.json", j(["size", 224]))
    put(h, "nasty-deep.json", '{"size":' + nested(300) + "}")


# ------------------------------------------------------------------ tokenizers

def read(name):
    with open(os.path.join(MODEL, name), "rb") as f:
        return f.read()


def seeds_tokenizer():
    h = "fuzz_tokenizer"
    cfg, smap, added = read("tokenizer_config.json"), read("special_tokens_map.json"), read("added_tokens.json")
    text = "USER: <image>\nDescribe the image. ASSISTANT: a red circle"
    put(h, "valid-bundled", parts(cfg, smap, added, text))
    c = json.loads(cfg)
    c["legacy"] = False
    put(h, "valid-legacy-false", parts(j(c), smap, added, "<image>hello ▁world </s>"))
    put(h, "valid-no-optional-files", parts(b"{}"))
    put(h, "nasty-added-id-int32-max", parts(b"{}", b"{}", j({"<x>": 2147483647}), "<x> and <s>"))
    put(h, "nasty-decoder-id-int32-max", parts(j({"added_tokens_decoder": {"2147483646": {"content": "<y>"}}}), b"{}", b"{}", "<y>"))
    put(h, "nasty-added-id-float", parts(b"{}", b"{}", j({"<x>": 1e20}), "<x>"))
    put(h, "nasty-added-id-negative", parts(b"{}", b"{}", j({"<x>": -5}), "<x>"))
    put(h, "nasty-decoder-key-huge", parts(j({"added_tokens_decoder": {"99999999999999999999999": {"content": "<y>"}}}), b"{}", b"{}", "<y>"))
    put(h, "nasty-special-wrong-type", parts(j({"bos_token": 5, "unk_token": {"content": 3}}), b"{}", b"{}", "x"))
    put(h, "nasty-config-array", parts(b"[1]", b"{}", b"{}", "x"))
    put(h, "nasty-deep", parts('{"x":' + nested(300) + "}", b"{}", b"{}", "x"))
    put(h, "nasty-bad-model", parts(b"{}", b"{}", b"{}", "x", b"\x0a\x05hello\x12\xff\xff\xff\xff\x0f"))
    put(h, "nasty-bad-model-legacy-false", parts(j({"legacy": False}), b"{}", b"{}", "x", b"\x1a\x80\x80\x80\x80\x10"))


VOCAB = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "##s", "hello", "##ing", "!", "."]) + "\n"


def seeds_wordpiece():
    h = "fuzz_wordpiece"
    cfg = j({"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True})
    put(h, "valid", parts(VOCAB, cfg, b"{}", j({"[DEC]": 13}), "Hello, red CIRCLES! Ça 中文 [MASK]"))
    put(h, "valid-decoder", parts(VOCAB, j({"added_tokens_decoder": {"13": {"content": "[DEC]"}}, "bos_token": "[DEC]"}),
                                  b"{}", b"{}", "[DEC] a red circle"))
    put(h, "valid-vocab-only", parts(VOCAB))
    put(h, "nasty-added-id-int32-max", parts(VOCAB, b"{}", b"{}", j({"[DEC]": 2147483647}), "[DEC] x"))
    put(h, "nasty-decoder-key-erange", parts(VOCAB, j({"added_tokens_decoder": {"99999999999999999999": {"content": "[X]"}}})))
    put(h, "nasty-added-id-float", parts(VOCAB, b"{}", b"{}", j({"[DEC]": 13.5})))
    put(h, "nasty-no-unk", parts("[CLS]\n[SEP]\n"))
    put(h, "nasty-invalid-utf8", parts(VOCAB, b"{}", b"{}", b"{}", b"\xff\xfe\xf7\xbf\xbf\xbf a \xc3"))
    put(h, "nasty-deep", parts(VOCAB, '{"x":' + nested(300) + "}"))


# ------------------------------------------------------------------ datasets

def seeds_dataset():
    h = "fuzz_dataset"
    put(h, "valid.jsonl", '{"image": "a.png", "caption": "a red circle"}\n{"image": "http://x.org/b.jpg?s=1"}\n\n')
    put(h, "valid-sbu.json", j({"image_urls": ["http://x.org/a/cat.jpg", "b/cat.jpg"], "captions": ["c1", None]}))
    put(h, "valid-single.json", j({"image": "/abs/c.png", "caption": "x"}))
    put(h, "nasty-caption-number.jsonl", '{"image": "a.png", "caption": 5}\n')
    put(h, "nasty-caption-object.json", j({"image": "a.png", "caption": {"text": "x"}}))
    put(h, "nasty-captions-non-string.json", j({"image_urls": ["a.jpg", "b.jpg"], "captions": ["ok", 7]}))
    put(h, "nasty-image-number.jsonl", '{"image": 1}\n')
    put(h, "nasty-dotdot.jsonl", '{"image": ".."}\n{"image": "."}\n{"image": ""}\n{"image": "http://x/"}\n')
    put(h, "nasty-deep.json", '{"image": "a.png", "x": ' + nested(300) + "}")
    put(h, "nasty-deep-line.jsonl", '{"image": "a.png"}\n{"image": "b.png", "x": ' + nested(300) + "}\n")
    put(h, "nasty-urls-not-list.json", j({"image_urls": "a.jpg"}))
    put(h, "nasty-empty.json", " \n")


# ------------------------------------------------------------------ runs and merge

RUN = {"model": "models/shapes-llava", "family": "llava", "layers": 4, "units_per_layer": 352, "options": {"query": "q"},
       "version": "0.1.0", "shard": "0/1"}
RESULT = {"id": "img", "image": "img.png", "caption": "a red circle", "generated_ids": [5, 7, 9], "prompt_ids": [1, 2],
          "nouns": [{"word": "circle", "lemma": "circle", "token_id": 9, "step": 2}]}


def neurons(rows, k=None):
    k = k or len(rows)
    return npy("<f4", (1, k, 3), b"".join(f32(*r) for r in rows))


def seeds_run():
    h = "fuzz_run"
    good = neurons([(0, 5, 0.9), (3, 351, 0.5)])
    put(h, "valid", parts(j(RUN), j(RESULT), good))
    put(h, "valid-gradient", parts(j(RUN), j(RESULT), good, neurons([(1, 1, 0.1)])))
    put(h, "valid-no-nouns", parts(j(RUN), j(dict(RESULT, nouns=[]))))
    put(h, "nasty-run-array", parts(j([RUN]), j(RESULT), good))
    put(h, "nasty-run-string", parts(j("run"), j(RESULT), good))
    put(h, "nasty-layers-float-huge", parts(j(dict(RUN, layers=1e300)), j(RESULT), good))
    put(h, "nasty-layers-fraction", parts(j(dict(RUN, layers=4.5)), j(RESULT), good))
    put(h, "nasty-units-2pow40", parts(j(dict(RUN, units_per_layer=1 << 40)), j(RESULT), good))
    put(h, "nasty-layers-2pow32plus4", parts(j(dict(RUN, layers=(1 << 32) + 4)), j(RESULT), good))
    put(h, "nasty-options-array", parts(j(dict(RUN, options=[1])), j(RESULT), good))
    put(h, "nasty-token-id-float", parts(j(RUN), j(dict(RESULT, nouns=[{"word": "c", "token_id": 1e300, "step": 0}])), good))
    put(h, "nasty-generated-float", parts(j(RUN), j(dict(RESULT, generated_ids=[1e30, 7, 9])), good))
    put(h, "nasty-step-negative", parts(j(RUN), j(dict(RESULT, nouns=[{"word": "c", "token_id": 5, "step": -1}])), good))
    put(h, "nasty-step-huge", parts(j(RUN), j(dict(RESULT, nouns=[{"word": "c", "token_id": 5, "step": 4294967296}])), good))
    put(h, "nasty-result-string", parts(j(RUN), j("result"), good))
    put(h, "nasty-nouns-object", parts(j(RUN), j(dict(RESULT, nouns={"word": "c"})), good))
    put(h, "nasty-neurons-shape-overflow", parts(j(RUN), j(RESULT), npy("<f4", (1, 1 << 40, 3), f32(0, 0, 0))))
    put(h, "nasty-neurons-nan", parts(j(RUN), j(RESULT), neurons([(float("nan"), 1, 0.5)])))
    put(h, "nasty-neurons-outside", parts(j(RUN), j(RESULT), neurons([(4, 1, 0.5)])))
    put(h, "nasty-deep", parts(j(RUN)[:-1] + ', "x": ' + nested(300) + "}", j(RESULT), good))


def seeds_merge():
    h = "fuzz_merge"
    r = j(RUN)
    res = j(RESULT)
    put(h, "valid", parts(r, r, res, res))
    put(h, "valid-existing-out", parts(r, j(dict(RUN, shard="1/2")), res, res, r))
    put(h, "nasty-different-result", parts(r, r, res, j(dict(RESULT, caption="x"))))
    put(h, "nasty-different-options", parts(r, j(dict(RUN, options={"query": "other"})), res, res))
    put(h, "nasty-run-array", parts(r, j([RUN]), res, res))
    put(h, "nasty-run-number", parts(b"7", r, res, res))
    put(h, "nasty-shard-number", parts(r, j(dict(RUN, shard=1)), res, res))
    put(h, "nasty-out-array", parts(r, r, res, res, b"[]"))
    put(h, "nasty-out-other-model", parts(r, r, res, res, j(dict(RUN, model="other"))))
    deep = r[:-1] + ', "options": ' + nested(300) + "}"
    put(h, "nasty-deep-options", parts(deep, deep, res, res))


# ------------------------------------------------------------------ model config

def seeds_config():
    h = "fuzz_config"
    cfg = json.loads(read("config.json"))
    gen = read("generation_config.json")
    put(h, "valid-bundled", parts(j(cfg), gen))
    put(h, "valid-no-generation", parts(j(cfg)))

    def with_text(**kv):
        c = json.loads(json.dumps(cfg))
        c["text_config"].update(kv)
        return j(c)

    def with_top(**kv):
        c = json.loads(json.dumps(cfg))
        c.update(kv)
        return j(c)

    def with_vision(**kv):
        c = json.loads(json.dumps(cfg))
        c["vision_config"].update(kv)
        return j(c)

    put(h, "nasty-hidden-1e300", parts(with_text(hidden_size=1e300)))
    put(h, "nasty-layers-fraction", parts(with_text(num_hidden_layers=4.5)))
    put(h, "nasty-layers-2pow32plus4", parts(with_text(num_hidden_layers=(1 << 32) + 4)))
    put(h, "nasty-layers-huge", parts(with_text(num_hidden_layers=99999999)))
    put(h, "nasty-vocab-2pow40", parts(with_text(vocab_size=1 << 40)))
    put(h, "nasty-vocab-uint64", parts(with_text(vocab_size=18446744073709551615)))
    put(h, "nasty-heads-zero", parts(with_text(num_attention_heads=0)))
    put(h, "nasty-image-token-2pow33", parts(with_top(image_token_index=1 << 33)))
    put(h, "nasty-feature-layer-huge-negative", parts(with_top(vision_feature_layer=-(1 << 40))))
    put(h, "nasty-vision-image-size-huge", parts(with_vision(image_size=2147483647, patch_size=1)))
    put(h, "nasty-vision-patch-huge", parts(with_vision(image_size=65536, patch_size=8)))
    put(h, "nasty-eos-2pow40", parts(j(cfg), j({"eos_token_id": 1 << 40})))
    put(h, "nasty-eos-float", parts(j(cfg), j({"eos_token_id": [2.5]})))
    put(h, "nasty-text-config-array", parts(with_top(text_config=[1, 2])))
    put(h, "nasty-config-array", parts(b"[]"))
    put(h, "nasty-original-llava", parts(j({"architectures": ["LlavaLlamaForCausalLM"], "mm_vision_tower": "../../nowhere",
                                            "hidden_size": 128})))
    put(h, "nasty-deep", parts(j(cfg)[:-1] + ', "x": ' + nested(300) + "}"))


def main():
    seeds_npy()
    seeds_safetensors()
    seeds_safetensors_index()
    seeds_torch()
    seeds_image()
    seeds_preprocessor()
    seeds_tokenizer()
    seeds_wordpiece()
    seeds_dataset()
    seeds_run()
    seeds_merge()
    seeds_config()


if __name__ == "__main__":
    main()
