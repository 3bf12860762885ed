"""run_with_hooks and run_with_cache against the command line: hooks that change activations in
place or by returning an array, on the prefill and on decode steps, through the KV cache."""
import json

import numpy as np
import pytest

import mmneuron
from conftest import cli, cli_json, BUNDLED


def zero_unit(unit):
    def hook(act, hook):
        act[:, unit] = 0.0
    return hook


@pytest.fixture(scope="module")
def clean(model, scene):
    return model.run_with_hooks(scene)


@pytest.fixture(scope="module")
def strong_neuron(model, scene):
    """The top neuron of the scene's first noun: zeroing it visibly changes the logits."""
    n = model.find(scene, top_k=10, report=1)["nouns"][0]["neurons"][0]
    return n["layer"], n["unit"]


def test_inplace_zero_equals_cli_ablation(model, scene, strong_neuron, clean, tmp_path):
    layer, unit = strong_neuron
    out = model.run_with_hooks(scene, fwd_hooks=[(f"blocks.{layer}.mlp.hook_post", zero_unit(unit))])
    ref = cli_json("caption", "--model", BUNDLED, "--image", scene, "--ablate", f"{layer}:{unit}", "--json", "--quiet",
                   "--dump", tmp_path)
    assert out["generated_ids"] == ref["generated_ids"]
    assert out["caption"] == ref["caption"]
    np.testing.assert_array_equal(out["logits"], np.load(tmp_path / "logits_steps.npy"))
    assert not np.array_equal(out["logits"], clean["logits"])  # the ablation did something


def test_returning_hook_equals_inplace(model, scene, clean):
    def scale_inplace(act, hook):
        act *= 1.5

    def scale_returned(act, hook):
        return (act * 1.5).astype(np.float64)  # any dtype numpy can cast; copied back into the rows

    a = model.run_with_hooks(scene, fwd_hooks=[("blocks.1.hook_resid_post", scale_inplace)])
    b = model.run_with_hooks(scene, fwd_hooks=[("blocks.1.hook_resid_post", scale_returned)])
    np.testing.assert_array_equal(a["logits"], b["logits"])
    assert a["generated_ids"] == b["generated_ids"]
    assert not np.array_equal(a["logits"], clean["logits"])
    # Returning the same array (modified in place) works too.
    c = model.run_with_hooks(scene, fwd_hooks=[("blocks.1.hook_resid_post", lambda act, h: scale_inplace(act, h) or act)])
    np.testing.assert_array_equal(a["logits"], c["logits"])


def test_hook_sees_every_pass_as_a_view(model, scene, clean):
    seen = []

    def look(act, hook):
        assert act.dtype == np.float32 and act.flags.writeable and not act.flags.owndata
        seen.append((hook.name, hook.layer, hook.step, hook.pos0, hook.rows, act.shape))

    out = model.run_with_hooks(scene, fwd_hooks=[(lambda n: n == "blocks.2.mlp.hook_act", look)])
    T = len(out["generated_ids"])
    _, cache = model.run_with_cache(scene, "blocks.2.mlp.hook_act")
    S = cache.prompt_rows
    assert seen[0] == ("blocks.2.mlp.hook_act", 2, 0, 0, S, (S, model.cfg.d_mlp))
    assert [s[2] for s in seen] == list(range(T))            # the prefill, then one pass per decode step
    assert [s[3] for s in seen[1:]] == [S - 1 + t for t in range(1, T)]
    assert all(s[4] == 1 for s in seen[1:])
    np.testing.assert_array_equal(out["logits"], clean["logits"])  # looking changes nothing


def test_decode_step_hook_flows_through_kv_cache(model, scene, clean):
    rng = np.random.default_rng(0)
    push = rng.standard_normal(model.cfg.d_model).astype(np.float32) * 4

    def at_step_1(act, hook):
        if hook.step == 1:
            act += push

    out = model.run_with_hooks(scene, fwd_hooks=[("blocks.0.hook_resid_post", at_step_1)], max_new_tokens=6)
    ref = model.run_with_hooks(scene, max_new_tokens=6)
    np.testing.assert_array_equal(out["logits"][0], ref["logits"][0])  # the prefill is untouched
    assert not np.array_equal(out["logits"][1], ref["logits"][1])    # the step's own row
    # Step 2 is not hooked: it differs only through the keys and values step 1 left in the cache
    # (when step 1 chose the same token, the input row of step 2 is the same).
    if out["generated_ids"][1] == ref["generated_ids"][1]:
        assert not np.array_equal(out["logits"][2], ref["logits"][2])


def test_cache_matches_cli_hook_dump(model, scene, tmp_path):
    names = ["blocks.0.hook_resid_pre", "blocks.3.mlp.hook_post", "blocks.1.mlp.act_fn_gate", "ln_final.hook_normalized"]
    logits, cache = model.run_with_cache(scene, names)
    args = ["caption", "--model", BUNDLED, "--image", scene, "--quiet", "--hook-dir", tmp_path]
    for n in names:
        args += ["--hook", n]
    cli(*args)
    assert list(cache) == names
    for n in names:
        np.testing.assert_array_equal(cache[n], np.load(tmp_path / f"{n}.npy"), err_msg=n)
        assert cache[n].flags.owndata or cache[n].base is not None
    T = len(cache.generated_ids)
    assert logits.shape == (T, model.cfg.d_vocab)
    assert cache["blocks.3.mlp.hook_post"].shape == (cache.prompt_rows + T - 1, model.cfg.d_mlp)
    np.testing.assert_array_equal(cache["mlp.hook_post", 3], cache["blocks.3.mlp.hook_post"])
    assert cache.predicting_rows("blocks.3.mlp.hook_post").shape == (T, model.cfg.d_mlp)
    assert cache.image_rows("blocks.3.mlp.hook_post").shape == (model.cfg.image_tokens, model.cfg.d_mlp)


def test_cache_with_hooks_sees_the_intervention(model, scene, strong_neuron):
    layer, unit = strong_neuron
    name = f"blocks.{layer}.mlp.hook_post"
    _, cache = model.run_with_cache(scene, name, fwd_hooks=[(name, zero_unit(unit))])
    assert not cache[name][:, unit].any()


def test_names_filter_forms(model, scene):
    _, everything = model.run_with_cache(scene, max_new_tokens=2)
    assert set(model.hook_names) <= set(everything)
    assert {"pixel_values", "vision_hidden_states", "image_features", "llm_inputs_embeds_prefill"} <= set(everything)
    _, some = model.run_with_cache(scene, lambda n: n.endswith("hook_mlp_out") or n == "image_features",
                                   max_new_tokens=2)
    assert sorted(some) == sorted([f"blocks.{l}.hook_mlp_out" for l in range(model.cfg.n_layers)] + ["image_features"])
    np.testing.assert_array_equal(some["image_features"], everything["image_features"])
    np.testing.assert_array_equal(everything["llm_inputs_embeds_prefill"],
                                  everything["blocks.0.hook_resid_pre"][:everything.prompt_rows])


def test_hook_errors(model, scene):
    with pytest.raises(ZeroDivisionError):
        model.run_with_hooks(scene, fwd_hooks=[("blocks.0.hook_attn_out", lambda a, h: 1 / 0)])
    kept = []
    with pytest.raises(mmneuron.Error, match="kept the activation array"):
        model.run_with_hooks(scene, fwd_hooks=[("blocks.0.hook_attn_out", lambda a, h: kept.append(a))])
    with pytest.raises(mmneuron.Error, match=r"returned an array of shape \(3,\); expected"):
        model.run_with_hooks(scene, fwd_hooks=[("blocks.0.hook_attn_out", lambda a, h: np.zeros(3))])
    with pytest.raises(mmneuron.Error, match="only the language model's hook points take hooks"):
        model.run_with_hooks(scene, fwd_hooks=[("image_features", lambda a, h: None)])
    # The model still works after a failed hook.
    assert model.run_with_hooks(scene)["caption"]
