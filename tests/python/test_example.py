"""examples/top_neurons.py runs on the bundled model and writes its figure."""
import subprocess
import sys

import mmneuron
from conftest import SOURCE_DIR


def test_top_neurons_example(tmp_path):
    script = SOURCE_DIR / "examples" / "top_neurons.py"
    assert len(script.read_text().splitlines()) < 40
    out = tmp_path / "fig.png"
    r = subprocess.run([sys.executable, str(script), "assets/scenes/images/000007.png", "circle", str(out)],
                       cwd=SOURCE_DIR, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('caption: "') and lines[1] == 'top neurons of "circle" (layer, unit: score, top tokens):'
    assert len([l for l in lines if l.startswith("  L")]) == 5
    fig = mmneuron.load_image(str(out))
    assert fig.shape[1] % 6 == 0 and fig.shape[1] // 6 >= 448  # six panels of at least 448 px
