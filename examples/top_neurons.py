"""A noun's top multi-modal neurons and their heatmaps (the paper's Fig. 1 kind) on the bundled
shapes model: caption a scene, rank every FFN neuron for the noun, print the top five with the tokens
their value vectors promote, and write their maps over the image, side by side, to one PNG.

    PYTHONPATH=build/python python3 examples/top_neurons.py [IMAGE] [NOUN] [OUT.png]
"""
import sys

import numpy as np

import mmneuron

image = sys.argv[1] if len(sys.argv) > 1 else "assets/scenes/images/000007.png"
noun = sys.argv[2] if len(sys.argv) > 2 else None
out = sys.argv[3] if len(sys.argv) > 3 else "top_neurons.png"

m = mmneuron.load()  # models/shapes-llava
res = m.find(image, heatmaps=True)
print(f'caption: "{res["caption"]}"')
k = [n["word"] for n in res["nouns"]].index(noun) if noun else 0
n = res["nouns"][k]
print(f'top neurons of "{n["word"]}" (layer, unit: score, top tokens):')
for e in n["neurons"][:5]:
    print(f'  L{e["layer"]} U{e["unit"]:<4} {e["score"]:7.3f}  {"|".join(e["top_tokens"][:4])}')

maps = res["heatmaps"][f'{n["step"]}_{n["word"]}']  # the find --heatmaps folder's maps
scale = maps["index"][0]["scale"][1]  # one absolute scale for all of the noun's maps
panels = [mmneuron.heatmap_figure(res["input_image"], grid, scale, [n["word"], e["name"]])
          for grid, e in zip(maps["maps"], maps["index"]) if e.get("rank") or e.get("top") == 10]
mmneuron.write_png(out, np.concatenate(panels, axis=1))
print(f"wrote {out}: {len(panels)} maps, scale 0..{scale:.3g}")
