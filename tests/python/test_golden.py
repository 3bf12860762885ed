"""The golden cases (../shared/golden) through run_with_cache, with the C++ golden tests' tolerances:
ids exact, every float array within 2e-5 * max|ref| (3e-5 for mPLUG-Owl2), pixel_values within 1e-6.
The hook points and the encoder's arrays of one run_with_cache call are laid out as the reference's
arrays; the score arrays are recomputed from the weight views W_out and W_U."""
import numpy as np
import pytest

import mmneuron
from conftest import require_shared

IMAGES = ["landscape_80x60", "portrait_48x72", "tiny_10x10"]
MODELS = {  # model -> (group folder, tolerance)
    "tiny-llava-a-f32": ("", 2e-5),
    "tiny-llava-c-f16": ("", 2e-5),
    "tiny-iblip-a-f32": ("", 2e-5),
    "tiny-owl2-a-f32": ("", 3e-5),
    "tiny-llava1-a-f32": ("llava1/", 2e-5),
    "tiny-llava1-a-f32-bin": ("llava1/", 2e-5),
}
_models = {}


def load_golden(golden, name):
    if name not in _models:
        _models[name] = mmneuron.load(golden / (MODELS[name][0] + "models") / name)
    return _models[name]


def close(name, got, ref, rel):
    got = np.asarray(got)
    assert got.shape == ref.shape, f"{name}: shape {got.shape}, reference {ref.shape}"
    if ref.dtype.kind in "iub":
        np.testing.assert_array_equal(got, ref, err_msg=name)
        return
    tol = 1e-6 if name == "pixel_values" else rel * float(np.abs(ref).max())
    diff = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    assert diff <= tol, f"{name}: max|got-ref| = {diff}, tolerance {tol}"


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("name", list(MODELS))
def test_golden_case(name, image):
    golden = require_shared()
    group, rel = MODELS[name]
    case = golden / (group + "cases") / name.removesuffix("-bin") / image
    m = load_golden(golden, name)
    logits, cache = m.run_with_cache(str(golden / "images" / (image + ".png")), max_new_tokens=8)
    ref = {p.stem: np.load(p) for p in case.glob("*.npy")}
    S, T = cache.prompt_rows, len(cache.generated_ids)
    img = slice(cache.image_pos0, cache.image_pos0 + cache.image_tokens)
    steps = slice(S - 1, S - 1 + T)  # row S - 1 + j predicts generated token j

    np.testing.assert_array_equal(cache.generated_ids, ref["generated_ids"])
    np.testing.assert_array_equal(cache.prompt_ids, ref["input_ids"])
    got = {
        "logits_steps": logits,
        "logits_prefill_last": logits[0],
        "llm_layer_outputs_prefill": cache.stack("hook_resid_post", slice(0, S)),
        "llm_final_norm_prefill": cache["ln_final.hook_normalized"][:S],
        "act_fn_gate_steps": cache.stack("mlp.hook_act", steps).transpose(1, 0, 2),
        "down_proj_input_steps": cache.stack("mlp.hook_post", steps).transpose(1, 0, 2),
        "act_fn_gate_image_positions_prefill": cache.stack("mlp.hook_act", img),
        "down_proj_input_image_positions_prefill": cache.stack("mlp.hook_post", img),
    }
    # W_down[:, i] . U[t_j] from the weight views, and the paper's score (method.md §3).
    W_U = m.W_U(dtype="float32").astype(np.float64)[:, cache.generated_ids]             # [D, T]
    proj = np.stack([m.W_out(l, dtype="float32").astype(np.float64) @ W_U for l in range(m.cfg.n_layers)])
    got["token_unembed_proj"] = proj.transpose(2, 0, 1)                                    # [T, L, I]
    got["scores_act_fn_gate"] = got["act_fn_gate_steps"] * got["token_unembed_proj"]
    got["scores_down_proj_input"] = got["down_proj_input_steps"] * got["token_unembed_proj"]
    for key in ref:  # the encoder's arrays, under their dump names
        if key in cache:
            got[key] = cache[key]
    encoder = [k for k in got if k in cache and not k.startswith(("blocks.", "ln_final."))]
    assert "image_features" in encoder and "pixel_values" in encoder, sorted(cache)
    for key, value in got.items():
        close(key, value, ref[key], rel)
    assert len(got) >= 14
