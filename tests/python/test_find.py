"""Model.find against `mmneuron find` on the same image, read back with mmneuron.load_run."""
import numpy as np
import pytest

import mmneuron
from conftest import BUNDLED, SCENES, cli


def without_timings(r):
    return {k: v for k, v in r.items() if k not in ("timings",)}


@pytest.mark.parametrize("options", [["--heatmaps"], ["--activation", "swiglu", "--top-k", "50", "--random-baseline", "3",
                                                      "--gradient-baseline"]])
def test_find_equals_cli(model, options, tmp_path):
    image = str(SCENES / "000007.png")
    cli("find", "--model", BUNDLED, "--image", image, "--out", tmp_path / "run", "--quiet", *options)
    run = mmneuron.load_run(tmp_path / "run")
    assert list(run) == ["000007"] and run.info["family"] == "llava"
    ref = run["000007"]
    kw = {"heatmaps": True} if "--heatmaps" in options else {
        "activation": "swiglu", "top_k": 50, "random_baseline": 3, "gradient_baseline": True}
    got = model.find(image, **kw)
    assert set(got) == set(ref)
    arrays = [k for k in got if isinstance(got[k], (np.ndarray, dict)) and k != "timings"]
    for key in set(got) - set(arrays) - {"timings", "nouns"}:
        assert got[key] == ref[key], key
    assert got["nouns"] == ref["nouns"]  # words, steps, the reported neurons with their logit-lens tokens
    assert len(got["nouns"]) >= 2
    for key in ("neurons", "gradient", "image_acts", "input_image"):
        if key in ref:
            assert got[key].dtype == ref[key].dtype
            np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    if "--heatmaps" in options:
        assert set(got["heatmaps"]) == set(ref["heatmaps"])
        for name, h in got["heatmaps"].items():
            np.testing.assert_array_equal(h["maps"], ref["heatmaps"][name]["maps"], err_msg=name)
            assert h["index"] == ref["heatmaps"][name]["index"]
        assert got["heatmaps"][next(iter(got["heatmaps"]))]["maps"].shape[1:] == (8, 8)
    else:
        assert got["neurons"].shape == (len(got["nouns"]), 50, 3)


def test_find_arguments(model, scene):
    r = model.find(scene, nouns="circle", top_k=5, report=2)
    assert [n["word"] for n in r["nouns"]] == ["circle"] and len(r["nouns"][0]["neurons"]) == 2
    assert r["neurons"].shape == (1, 5, 3) and r["id"] == "000007"
    with open(scene, "rb") as f:
        assert model.find(f.read(), nouns=["circle"], top_k=5)["id"] == "image"
    with pytest.raises(mmneuron.Error, match="top-k 100000 is larger than the model's 1408 FFN neurons"):
        model.find(scene, top_k=100000)
    with pytest.raises(mmneuron.Error, match="method: expected score or gradient"):
        model.find(scene, method="best")
