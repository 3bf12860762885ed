"""mmneuron from Python: the multi-modal neurons toolkit's engine (exact, memory-mapped, KV cache
on) with TransformerLens conventions.

    import mmneuron
    m = mmneuron.load()                     # the bundled shapes model; or a directory or a repo id
    logits, cache = m.run_with_cache("scene.png", names_filter=lambda n: n.endswith("mlp.hook_post"))
    out = m.run_with_hooks("scene.png", fwd_hooks=[("blocks.1.mlp.hook_post", zero_unit_17)])
    res = m.find("scene.png", heatmaps=True)

Arrays are numpy; activations are [positions, width] (no batch axis). Every engine error is an
mmneuron.Error (a RuntimeError) carrying the command line's one-line message. README "Python".
"""

import json
import os
import warnings

import numpy as np

from ._core import (Error, HookPoint, Tokenizer, __version__, compute_mode, heatmap_figure, load_image, num_threads,
                    set_compute, write_png)
from . import _core

for _t in (Error, HookPoint, Tokenizer):
    _t.__module__ = __name__  # mmneuron.Error, not mmneuron._core.Error

__all__ = ["load", "load_run", "Model", "Config", "ActivationCache", "Run", "Error", "HookPoint", "Tokenizer",
           "load_image", "write_png", "heatmap_figure", "num_threads", "set_compute", "compute_mode", "__version__"]

_QUERY = "Describe the image in few words."  # the CLI's defaults (PromptText)
_PREFIX = "An image of"


def load(model=None, *, vision_tower=None, threads=0, compute=None):
    """Loads a checkpoint: a directory in its Hugging Face layout, a repo id in the local Hugging Face
    cache (ORG/NAME or ORG/NAME@REVISION, resolved offline like --model), or None for the bundled
    shapes model ($MMN_MODEL, else models/shapes-llava). vision_tower: the separate tower of an
    original-layout LLaVA (--vision-tower). threads: worker threads, 0 = all cores (--threads); the
    first load of a process decides. compute: 'exact' or 'bf16' (--compute), set with set_compute
    before loading; like threads it holds for the whole process; None keeps the current mode."""
    if compute is not None:
        set_compute(compute)
    m = _core.load(None if model is None else os.fspath(model), "" if vision_tower is None else os.fspath(vision_tower),
                   threads)
    if threads and num_threads() != threads:
        warnings.warn(f"mmneuron: threads={threads} ignored; this process already runs {num_threads()} threads")
    return Model(m)


class Config:
    """The model's shape (TransformerLens' names): n_layers, d_model, d_mlp (= d_ff, neurons per layer),
    d_vocab, n_heads, n_key_value_heads, d_head, family, image_tokens, grid_side (0 when the image tokens
    are queries without a grid), input_size, dtype (of the weights), model_dir, ..."""

    def __init__(self, d):
        self.__dict__.update(d)

    @property
    def layers(self):
        return self.n_layers

    @property
    def d_ff(self):
        return self.d_mlp

    def to_dict(self):
        return dict(self.__dict__)

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"


def _names(names_filter):
    """names_filter -> (names that must exist, predicate or None)."""
    if names_filter is None:
        return [], lambda name: True
    if isinstance(names_filter, str):
        return [names_filter], None
    if callable(names_filter):
        return [], names_filter
    return [str(n) for n in names_filter], None


def _hooks(model, fwd_hooks):
    """fwd_hooks [(name | list of names | filter, fn), ...] -> [(hook point name, fn), ...] in order."""
    out = []
    for item in fwd_hooks:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not callable(item[1]):
            raise Error("fwd_hooks: expected (name or filter, fn) pairs, got " + repr(item)[:80])
        target, fn = item
        if isinstance(target, str):
            out.append((target, fn))
        elif callable(target):
            out.extend((n, fn) for n in model.hook_names if target(n))
        else:
            out.extend((str(n), fn) for n in target)
    return out


class Model:
    """A loaded checkpoint. image arguments everywhere: a path, PNG/JPEG bytes, or an HxWx3 uint8 array."""

    def __init__(self, core):
        self._m = core
        self.cfg = Config(core.config)
        self.tokenizer = core.tokenizer
        self.hook_names = core.hook_names()

    def __repr__(self):
        c = self.cfg
        return f"<mmneuron.Model {c.family} {c.model_dir}: {c.n_layers} layers x {c.d_mlp} neurons>"

    # ------------------------------------------------------------------ generation
    def caption(self, image, query=_QUERY, prefix=_PREFIX, max_new_tokens=50):
        """Greedy caption: the dict `mmneuron caption --json` prints (prompt_ids, generated_ids, caption,
        timings)."""
        return self._m.caption(image, query, prefix, max_new_tokens)

    def run_with_cache(self, image, names_filter=None, *, query=_QUERY, prefix=_PREFIX, max_new_tokens=50,
                       fwd_hooks=()):
        """Captions the image (greedy, KV cache on) and records activations: returns (logits, cache).

        names_filter: None (everything), a name, a list of names or a callable name -> bool, over the hook
        points (self.hook_names) and the encoder's arrays (pixel_values, vision_hidden_states,
        image_features, ... as `caption --dump` names them). cache[name] is [rows, width] float32: the
        prompt's S rows, then one row per decode step (S + T - 1 rows for T generated tokens: the last
        token is never fed back). logits is [T, d_vocab]: logits[j] predicts generated token j, from row
        S - 1 + j. fwd_hooks (optional, as in run_with_hooks) run first, so the cache shows what they
        made."""
        names, pred = _names(names_filter)
        r = self._m.run(image, query, prefix, max_new_tokens, names, pred, _hooks(self, fwd_hooks))
        return r.pop("logits"), ActivationCache(r.pop("cache"), r)

    def run_with_hooks(self, image, fwd_hooks=(), *, query=_QUERY, prefix=_PREFIX, max_new_tokens=50):
        """Captions the image with hooks: fwd_hooks = [(name or filter, fn), ...]; fn(activation, hook) gets
        the rows [rows, width] of every prefill and decode pass at that point as a float32 numpy view on
        the engine's buffer (valid only during the call; keep .copy() to store it) and may change it in
        place, or return a new array of the same shape. The change flows through the rest of the pass and
        the KV cache into every later step. Returns caption's dict plus logits [T, d_vocab]."""
        r = self._m.run(image, query, prefix, max_new_tokens, [], None, _hooks(self, fwd_hooks))
        del r["cache"]
        return r

    # ------------------------------------------------------------------ find
    def find(self, image, *, nouns=None, tokens="nouns", top_k=1000, report=100, activation="act",
             method="score", gradient_baseline=False, fold_norm_gain=False, heatmaps=False,
             shuffle_image_tokens=None, random_baseline=0, query=_QUERY, prefix=_PREFIX, max_new_tokens=50,
             id=None):
        """`mmneuron find` on one image (the options of the same names). Returns result.json's dict plus
        arrays: "neurons" [nouns, k, 3] (layer, unit, score: neurons.npy), "gradient" (with
        gradient_baseline), "image_acts" [2, n_layers, d_mlp]; with heatmaps, "input_image" (HxWx3 uint8)
        and "heatmaps" {"<step>_<word>": {"maps": [maps, grid, grid], "index": maps.json}}."""
        if isinstance(nouns, str):
            nouns = [w for w in nouns.split(",") if w]
        return self._m.find(image, query, prefix, max_new_tokens, top_k, report, activation, method,
                            gradient_baseline, fold_norm_gain, tokens, list(nouns or []), heatmaps,
                            shuffle_image_tokens, random_baseline, id or "")

    # ------------------------------------------------------------------ weights
    # Read-only views on the memory-mapped checkpoint (no copy): float32 and float16 as stored, bf16 as
    # uint16 (its bits; numpy has no bfloat16). dtype="float32" converts (a copy) instead.
    # TransformerLens' orientation: W_out[layer][i] is neuron i's value vector.
    def W_out(self, layer, dtype=None):
        """down_proj of `layer` as [d_mlp, d_model] (the transpose of the stored [d_model, d_mlp])."""
        return self._m.mlp_weight(layer, "out", dtype)

    def W_in(self, layer, dtype=None):
        """up_proj of `layer` as [d_model, d_mlp]."""
        return self._m.mlp_weight(layer, "in", dtype)

    def W_gate(self, layer, dtype=None):
        """gate_proj of `layer` as [d_model, d_mlp]."""
        return self._m.mlp_weight(layer, "gate", dtype)

    def W_E(self, dtype=None):
        """embed_tokens, [d_vocab, d_model]."""
        return self._m.embedding_weight(False, dtype)

    def W_U(self, dtype=None):
        """The unembedding (lm_head) as [d_model, d_vocab]."""
        return self._m.embedding_weight(True, dtype)

    def weight(self, name, dtype=None):
        """Any tensor of the checkpoint by its stored name and shape (see weight_names())."""
        return self._m.weight(name, dtype)

    def weight_names(self):
        return self._m.weight_names()


class ActivationCache(dict):
    """run_with_cache's activations: name -> [rows, width] float32 array (a dict). Row p is position p
    of the sequence: the prompt's prompt_rows rows (image rows image_pos0 ... image_pos0 + image_tokens
    - 1), then one row per decode step. Also: prompt_ids, input_ids (one id per prompt row; image rows
    carry the placeholder), generated_ids, caption, timings. cache["mlp.hook_post", 3] is
    cache["blocks.3.mlp.hook_post"]."""

    def __init__(self, arrays, info):
        super().__init__(arrays)
        self.__dict__.update(info)

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2:
            key = f"blocks.{key[1]}.{key[0]}"
        return super().__getitem__(key)

    def image_rows(self, name):
        """The image rows of a hook point, [image_tokens, width] (a view)."""
        return self[name][self.image_pos0:self.image_pos0 + self.image_tokens]

    def predicting_rows(self, name):
        """Row j predicts generated token j: [T, width] (a view), the rows the paper's score reads."""
        return self[name][self.prompt_rows - 1:]

    def stack(self, suffix, rows=None):
        """Every layer's blocks.{l}.<suffix> stacked, [n_layers, rows, width] (a copy); rows: a slice."""
        layers = sorted(int(k.split(".")[1]) for k in self if k.startswith("blocks.") and k.endswith("." + suffix))
        if not layers:
            raise KeyError(f"no blocks.{{l}}.{suffix} in the cache")
        return np.stack([self[f"blocks.{l}.{suffix}"][rows if rows is not None else slice(None)] for l in layers])


class Run:
    """A finished find run (mmneuron.load_run): info (run.json) and images, id -> the same dict
    Model.find returns for that image (result.json plus its arrays)."""

    def __init__(self, index):
        self.dir = index["dir"]
        self.info = index["info"]
        self.images = {id_: _read_image_dir(d) for id_, d in index["images"]}

    def __getitem__(self, image_id):
        return self.images[image_id]

    def __iter__(self):
        return iter(self.images)

    def __len__(self):
        return len(self.images)

    def __repr__(self):
        return f"<mmneuron.Run {self.dir}: {len(self.images)} images>"


def load_run(run):
    """Reads a find run folder (checked like perturb and metrics do): see Run."""
    return Run(_core._load_run(os.fspath(run)))


def _read_image_dir(d):
    with open(os.path.join(d, "result.json"), encoding="utf-8") as f:
        res = json.load(f)
    for key, name in (("neurons", "neurons.npy"), ("gradient", "gradient.npy"), ("image_acts", "image_acts.npy")):
        path = os.path.join(d, name)
        if os.path.exists(path):
            res[key] = np.load(path)
    if os.path.exists(os.path.join(d, "input.png")):
        res["input_image"] = load_image(os.path.join(d, "input.png"))
        res["heatmaps"] = {}
        hd = os.path.join(d, "heatmaps")
        for name in sorted(os.listdir(hd)) if os.path.isdir(hd) else []:
            with open(os.path.join(hd, name, "maps.json"), encoding="utf-8") as f:
                res["heatmaps"][name] = {"maps": np.load(os.path.join(hd, name, "maps.npy")), "index": json.load(f)}
    return res
