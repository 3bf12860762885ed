"""load, cfg, tokenizer, caption, image inputs, weight views, errors, the GIL and memory."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import mmneuron
from conftest import BUNDLED, BINARY, cli, cli_json


def test_cfg_and_tokenizer(model):
    c = model.cfg
    assert (c.family, c.n_layers, c.d_model, c.d_mlp, c.d_vocab) == ("llava", 4, 128, 352, 514)
    assert (c.layers, c.d_ff, c.image_tokens, c.grid_side) == (4, 352, 64, 8)
    tok = model.tokenizer
    ids = tok.encode("a big red circle")
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids) == "a big red circle"
    assert tok.to_str_tokens("a big red circle") == ["<s>"] + [" " + w for w in "a big red circle".split()]
    assert tok.to_str_tokens(ids[1:]) == tok.to_str_tokens("a big red circle", add_bos=False)
    assert len(model.hook_names) == 11 * c.n_layers + 1 and model.hook_names[-1] == "ln_final.hook_normalized"


def test_caption_equals_cli(model, scene):
    ref = cli_json("caption", "--model", BUNDLED, "--image", scene, "--json", "--quiet")
    got = model.caption(scene)
    assert set(got) == set(ref) == {"prompt_ids", "generated_ids", "caption", "timings"}
    assert set(got["timings"]) == set(ref["timings"])
    for key in ("prompt_ids", "generated_ids", "caption"):
        assert got[key] == ref[key]
    q = dict(query="What is on the left?", prefix="The answer is", max_new_tokens=4)
    ref = cli_json("caption", "--model", BUNDLED, "--image", scene, "--json", "--quiet", "--query", q["query"],
                   "--prefix", q["prefix"], "--max-new-tokens", 4)
    assert model.caption(scene, **q)["generated_ids"] == ref["generated_ids"]


def test_image_forms(model, scene):
    pixels = mmneuron.load_image(scene)
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    with open(scene, "rb") as f:
        data = f.read()
    want = model.caption(scene)["generated_ids"]
    for image in (pixels, data, bytearray(data), memoryview(data), np.asfortranarray(pixels),
                  __import__("pathlib").Path(scene)):
        assert model.caption(image)["generated_ids"] == want


def cli_error(*args):
    r = cli(*args, check=False)
    assert r.returncode != 0 and r.stderr.startswith("error: "), r.stderr
    return r.stderr.strip().splitlines()[-1].removeprefix("error: ")


def test_errors_carry_the_cli_message(model, scene, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(mmneuron.Error) as e:
        model.caption(str(bad))
    assert str(e.value) == cli_error("caption", "--model", BUNDLED, "--image", bad)
    assert isinstance(e.value, RuntimeError)

    with pytest.raises(mmneuron.Error) as e:
        model.run_with_cache(scene, "blocks.0.mlp.hook_nope")
    msg = cli_error("caption", "--model", BUNDLED, "--image", scene, "--hook", "blocks.0.mlp.hook_nope",
                    "--hook-dir", tmp_path)
    assert str(e.value) == msg
    with pytest.raises(mmneuron.Error, match="layer 9 is out of range"):
        model.run_with_hooks(scene, fwd_hooks=[("blocks.9.hook_resid_post", lambda a, h: None)])
    with pytest.raises(mmneuron.Error, match="or one of this model's encoder arrays: pixel_values"):
        model.run_with_cache(scene, ["image_featurez"])

    missing = tmp_path / "no-model"
    with pytest.raises(mmneuron.Error) as e:
        mmneuron.load(missing)
    assert str(e.value) == cli_error("caption", "--model", missing, "--image", scene)
    with pytest.raises(mmneuron.Error) as e:
        mmneuron.load("some-org/not-downloaded")
    assert "huggingface-cli download some-org/not-downloaded" in str(e.value)

    for bad_image, match in ((np.zeros((4, 4), np.uint8), "expected an HxWx3 uint8 array"),
                             (np.zeros((4, 4, 3), np.float32), "expected an HxWx3 uint8 array"),
                             (np.zeros((0, 4, 3), np.uint8), "image array"),
                             (b"not an image", "<bytes>"), (3, "expected a path, PNG/JPEG bytes")):
        with pytest.raises(mmneuron.Error, match=match):
            model.caption(bad_image)
    with pytest.raises(mmneuron.Error, match=r"max_new_tokens: value 0 not in range \[1, 8192\]"):
        model.caption(scene, max_new_tokens=0)
    with pytest.raises(mmneuron.Error, match="^activation: expected act or swiglu"):
        model.find(scene, activation="gelu")
    with pytest.raises(mmneuron.Error, match="not a find run"):
        mmneuron.load_run(tmp_path)


def test_weights_are_read_only_views(model, tmp_path):
    c = model.cfg
    W = model.W_out(2)
    assert W.shape == (c.d_mlp, c.d_model) and W.dtype == np.float32 and not W.flags.writeable
    stored = model.weight("language_model.model.layers.2.mlp.down_proj.weight")
    assert stored.shape == (c.d_model, c.d_mlp) and np.shares_memory(W, stored)
    np.testing.assert_array_equal(W, stored.T)
    assert np.shares_memory(model.W_out(2), model.W_out(2))  # the mapping itself, not a copy
    with pytest.raises(ValueError):
        W[0, 0] = 1.0
    assert model.W_in(0).shape == model.W_gate(0).shape == (c.d_model, c.d_mlp)
    assert model.W_E().shape == (c.d_vocab, c.d_model) and model.W_U().shape == (c.d_model, c.d_vocab)
    assert "language_model.lm_head.weight" in model.weight_names()
    with pytest.raises(mmneuron.Error, match="layer 4 is out of range"):
        model.W_out(4)
    with pytest.raises(mmneuron.Error, match="missing tensor"):
        model.weight("nope")

    # bf16: the bits as uint16 without a copy, or float32 on request.
    cli("make-random", "--preset", "tiny", "--dtype", "bf16", "--out", tmp_path / "bf16")
    m16 = mmneuron.load(tmp_path / "bf16")
    bits = m16.W_out(1)
    assert bits.dtype == np.uint16 and not bits.flags.writeable
    f32 = m16.W_out(1, dtype="float32")
    assert f32.dtype == np.float32 and f32.shape == bits.shape
    np.testing.assert_array_equal(f32, (bits.astype(np.uint32) << 16).view(np.float32))
    with pytest.raises(mmneuron.Error, match="dtype: expected None"):
        m16.W_out(1, dtype="float16")


def test_gil_is_released(model, scene):
    ticks = [0]
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks[0] += 1

    t = threading.Thread(target=count)
    t.start()
    try:
        before = ticks[0]
        model.run_with_cache(scene, "blocks.0.hook_resid_post", max_new_tokens=50)
        during = ticks[0] - before
    finally:
        done.set()
        t.join()
    assert during > 1000  # the counting thread ran while the engine did


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_no_leak_over_100_calls(model, scene):
    def calls():
        logits, cache = model.run_with_cache(scene, lambda n: "mlp" in n or n == "image_features", max_new_tokens=4)
        model.run_with_hooks(scene, fwd_hooks=[("blocks.1.mlp.hook_post", lambda a, h: a * 0.5)], max_new_tokens=4)
        model.caption(scene, max_new_tokens=4)
        del logits, cache

    for _ in range(5):
        calls()  # warm up allocator pools
    start = rss_mb()
    for _ in range(100):
        calls()
    grown = rss_mb() - start
    assert grown < 20, f"RSS grew by {grown:.1f} MiB over 100 calls"


def test_threads_follow_the_cli_setting():
    code = "import mmneuron; m = mmneuron.load(threads=1); print(mmneuron.num_threads())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_compute_mode_is_the_cli_setting(model, scene):
    assert mmneuron.compute_mode() == "exact"
    with pytest.raises(mmneuron.Error, match="fp16"):
        mmneuron.set_compute("fp16")
    exact = model.run_with_hooks(scene, max_new_tokens=4)
    import warnings
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = mmneuron.set_compute("bf16")
    try:
        assert got == mmneuron.compute_mode()
        assert (got == "exact") == (len(w) == 1)  # a warning exactly when bf16 cannot run here
        bf16 = model.run_with_hooks(scene, max_new_tokens=4)
        diff = np.abs(bf16["logits"] - exact["logits"]).max() / np.abs(exact["logits"]).max()
        if got == "bf16":
            assert 0 < diff < 0.01  # README "Speed": 0.2% on the bundled model
        else:
            assert diff == 0
    finally:
        assert mmneuron.set_compute("exact") == "exact"
    # load(compute=) is set_compute before loading, for the whole process.
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            mmneuron.load(model.cfg.model_dir, compute="bf16")
            assert mmneuron.compute_mode() == got
        finally:
            mmneuron.load(model.cfg.model_dir, compute="exact")
    assert mmneuron.compute_mode() == "exact"
    with pytest.raises(mmneuron.Error, match="fp16"):
        mmneuron.load(model.cfg.model_dir, compute="fp16")
