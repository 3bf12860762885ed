#include "report/report_page.h"

#include "report/svg_plots.h"

namespace mmn {

namespace {

const char* kStyle = R"CSS(
body { font-family: sans-serif; margin: 0 auto; max-width: 1280px; padding: 0 16px 48px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 14px 0 6px; } h4 { font-size: 14px; margin: 10px 0 4px; }
small { color: #666; font-weight: normal; }
table { border-collapse: collapse; font-size: 12px; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
table.kv th { background: #f4f4f4; }
table.metrics td:nth-child(n+2) { font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
nav.tabs button, .pager button { margin-right: 4px; padding: 4px 10px; }
nav.tabs button.on { font-weight: bold; }
.controls { margin: 10px 0; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
article.image { border: 1px solid #ccc; border-radius: 6px; padding: 8px 12px; margin: 12px 0; }
.head { display: flex; gap: 16px; align-items: flex-start; }
img.input { width: 192px; height: auto; image-rendering: pixelated; border: 1px solid #999; }
.caption { font-size: 16px; } mark { background: #ffe08a; padding: 0 2px; }
.noun-panel { border-top: 1px dashed #ccc; margin-top: 8px; padding-top: 4px; }
.maps { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-end; }
figure { margin: 0; text-align: center; font-size: 11px; }
canvas.map { width: 160px; height: 160px; image-rendering: pixelated; border: 1px solid #999; }
canvas.mask { width: 80px; height: 80px; image-rendering: pixelated; border: 1px solid #999; }
canvas.bar { border: 1px solid #999; }
.scale { font-size: 11px; }
.tok-hit { font-weight: bold; color: #b00; }
.note { color: #555; font-size: 12px; }
#errors { color: #b00; white-space: pre-wrap; }
)CSS";

const char* kScript = R"JS(
(function () {
  'use strict';
  var errors = [];
  window.addEventListener('error', function (e) {
    errors.push(String(e.message));
    document.getElementById('errors').textContent = errors.join('\n');
    document.body.dataset.errors = String(errors.length);
  });
  var D = JSON.parse(document.getElementById('mmn-data').textContent);
  var grid = D.grid;
  var state = { tab: 'gallery', page: 0, filter: '', npage: 0 };

  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) if (arguments[i]) e.appendChild(arguments[i]);
    return e;
  }
  function fmt(v) { return Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(2) : v.toFixed(3); }

  // Diverging colour on an absolute scale shared by a group of maps: red for
  // positive, blue for negative, transparent at zero, opaque at |v| = M, so a
  // silent neuron looks silent.
  function rgba(v, M) {
    var a = M > 0 ? Math.min(1, Math.abs(v) / M) : 0;
    return v >= 0 ? 'rgba(215,25,28,' + (0.85 * a) + ')' : 'rgba(44,123,182,' + (0.85 * a) + ')';
  }
  function decodeMask(b64, n) {
    var bin = atob(b64), out = new Uint8Array(n);
    for (var i = 0; i < n; i++) out[i] = (bin.charCodeAt(i >> 3) >> (7 - (i & 7))) & 1;
    return out;
  }
  var imageCache = {};
  function withImage(src, f) {
    var im = imageCache[src];
    if (!im) { im = new Image(); im.src = src; imageCache[src] = im; }
    if (im.complete && im.naturalWidth) f(im); else im.addEventListener('load', function () { f(im); });
  }
  function drawOverlay(canvas, img, values, M) {
    var ctx = canvas.getContext('2d'), S = canvas.width;
    ctx.imageSmoothingEnabled = false;
    var cells = function () {
      var c = S / grid;
      for (var i = 0; i < grid; i++) for (var j = 0; j < grid; j++) {
        ctx.fillStyle = rgba(values[i * grid + j], M);
        ctx.fillRect(j * c, i * c, c, c);
      }
    };
    if (img.img) withImage(img.img, function (im) { ctx.drawImage(im, 0, 0, S, S); cells(); });
    else { ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, S, S); cells(); }
  }
  function drawMask(canvas, img, b64) {
    var w = img.w, h = img.h, ctx = canvas.getContext('2d');
    canvas.width = w; canvas.height = h;
    var m = decodeMask(b64, w * h), data = ctx.createImageData(w, h);
    for (var i = 0; i < w * h; i++) {
      var v = m[i] ? 255 : 0;
      data.data[4 * i] = v; data.data[4 * i + 1] = v; data.data[4 * i + 2] = v; data.data[4 * i + 3] = 255;
    }
    ctx.putImageData(data, 0, 0);
  }
  function drawBars(canvas, values, M) {
    var ctx = canvas.getContext('2d'), W = canvas.width, H = canvas.height, n = values.length;
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, W, H);
    var y0 = H / 2, s = M > 0 ? (H / 2 - 4) / M : 0;
    for (var i = 0; i < n; i++) {
      var v = values[i], x = 4 + i * (W - 8) / n, bw = Math.max(1, (W - 8) / n - 1);
      ctx.fillStyle = v >= 0 ? '#1f77b4' : '#d62728';
      ctx.fillRect(x, v >= 0 ? y0 - v * s : y0, bw, Math.abs(v) * s);
    }
    ctx.fillStyle = '#000'; ctx.fillRect(0, y0, W, 1);
  }
  function colourBar(M) {
    var c = el('canvas', { cls: 'bar', width: 160, height: 12 }), ctx = c.getContext('2d');
    for (var x = 0; x < 160; x++) { ctx.fillStyle = rgba((x / 159 * 2 - 1) * M, M); ctx.fillRect(x, 0, 1, 12); }
    return el('figure', { cls: 'scale' }, c,
      el('figcaption', { text: fmt(-M) + '  ·  0  ·  ' + fmt(M) + ' (activation; shared scale)' }));
  }
  function maxAbs(maps) {
    var M = 0;
    maps.forEach(function (m) { m.values.forEach(function (v) { M = Math.max(M, Math.abs(v)); }); });
    return M;
  }
  function mapTitle(m) {
    return m.rank ? '#' + m.rank + ' L' + m.layer + ' U' + m.unit : 'mean of top ' + m.top;
  }
  function mapFigure(img, m, M, size) {
    var fig = el('figure', { cls: 'map-fig' });
    if (grid > 0) {
      var c = el('canvas', { cls: 'map', width: size, height: size });
      drawOverlay(c, img, m.values, M);
      fig.appendChild(c);
      if (m.mask && img.w) { var k = el('canvas', { cls: 'mask' }); drawMask(k, img, m.mask); fig.appendChild(k); }
    } else {
      var b = el('canvas', { cls: 'bar', width: 240, height: 100 });
      drawBars(b, m.values, M);
      fig.appendChild(b);
    }
    var lo = Math.min.apply(null, m.values), hi = Math.max.apply(null, m.values);
    fig.appendChild(el('figcaption', { text: mapTitle(m) + ' [' + fmt(lo) + ', ' + fmt(hi) + ']' }));
    return fig;
  }
  function captionNode(img) {
    var p = el('p', { cls: 'caption' }), words = {};
    img.nouns.forEach(function (n) { words[n.word.toLowerCase()] = true; });
    img.caption.split(/(\s+|[,.;:!?])/).forEach(function (t) {
      if (words[t.toLowerCase()]) p.appendChild(el('mark', { text: t }));
      else p.appendChild(document.createTextNode(t));
    });
    return p;
  }
  function neuronTable(n) {
    var t = el('table', { cls: 'neurons' });
    t.appendChild(el('tr', null, el('th', { text: 'rank' }), el('th', { text: 'layer' }), el('th', { text: 'unit' }),
      el('th', { text: 'score' }), el('th', { text: 'top tokens (logit lens)' })));
    n.neurons.forEach(function (r, i) {
      var toks = el('td');
      (r[3] || []).forEach(function (tok, j) {
        var hit = tok.trim().toLowerCase() === n.word.toLowerCase() || tok.trim().toLowerCase() === n.lemma.toLowerCase();
        toks.appendChild(el('span', { cls: hit ? 'tok-hit' : '', text: (j ? ', ' : '') + JSON.stringify(tok) }));
      });
      t.appendChild(el('tr', null, el('td', { text: String(i + 1) }), el('td', { text: String(r[0]) }),
        el('td', { text: String(r[1]) }), el('td', { text: fmt(r[2]) }), toks));
    });
    return t;
  }
  function nounPanel(img, n) {
    var panel = el('div', { cls: 'noun-panel', 'data-noun': n.word, 'data-image': img.id },
      el('h4', { text: '“' + n.word + '” (lemma ' + n.lemma + ', generated token ' + n.step + ')' }), neuronTable(n));
    if (n.maps && n.maps.length) {
      var single = n.maps.filter(function (m) { return m.rank; }), means = n.maps.filter(function (m) { return !m.rank; });
      [single, means].forEach(function (group) {
        if (!group.length) return;
        var M = maxAbs(group), row = el('div', { cls: 'maps' });
        group.forEach(function (m) { row.appendChild(mapFigure(img, m, M, 192)); });
        row.appendChild(colourBar(M));
        panel.appendChild(row);
      });
    } else {
      panel.appendChild(el('p', { cls: 'note', text: 'No heatmaps in this run (find --heatmaps).' }));
    }
    return panel;
  }
  function matches(img) {
    if (!state.filter) return true;
    var f = state.filter.toLowerCase();
    return img.id.toLowerCase().indexOf(f) >= 0 || img.nouns.some(function (n) {
      return n.word.toLowerCase().indexOf(f) >= 0 || n.lemma.toLowerCase().indexOf(f) >= 0;
    });
  }
  function pager(total, size, current, go) {
    var pages = Math.max(1, Math.ceil(total / size)), p = el('div', { cls: 'pager' });
    var prev = el('button', { text: '‹ previous' }), next = el('button', { text: 'next ›' });
    if (current <= 0) prev.disabled = true;
    if (current >= pages - 1) next.disabled = true;
    prev.onclick = function () { go(current - 1); };
    next.onclick = function () { go(current + 1); };
    p.appendChild(prev);
    p.appendChild(el('span', { text: ' page ' + (current + 1) + ' of ' + pages + ' (' + total + ') ' }));
    p.appendChild(next);
    return p;
  }
  function renderGallery(root) {
    var list = D.images.filter(matches), size = D.page_size;
    state.page = Math.min(state.page, Math.max(0, Math.ceil(list.length / size) - 1));
    var go = function (p) { state.page = p; render(); window.scrollTo(0, 0); };
    root.appendChild(pager(list.length, size, state.page, go));
    var panels = 0, shown = list.slice(state.page * size, (state.page + 1) * size);
    document.body.dataset.imagesLoaded = '0';
    document.body.dataset.images = String(shown.filter(function (img) { return img.img; }).length);
    list.slice(state.page * size, (state.page + 1) * size).forEach(function (img) {
      var input = img.img ? el('img', { cls: 'input', alt: img.id }) : null;
      if (input) {
        input.addEventListener('load', function () {
          document.body.dataset.imagesLoaded = String(Number(document.body.dataset.imagesLoaded || 0) + 1);
        });
        input.src = img.img;
      }
      var art = el('article', { cls: 'image', id: 'img-' + img.id },
        el('h3', { text: 'Image ' + img.id }), el('div', { cls: 'head' }, input, captionNode(img)));
      img.nouns.forEach(function (n) { art.appendChild(nounPanel(img, n)); panels++; });
      if (img.skipped && img.skipped.length)
        art.appendChild(el('p', { cls: 'note', text: 'Skipped nouns: ' + JSON.stringify(img.skipped) }));
      if (!img.nouns.length) art.appendChild(el('p', { cls: 'note', text: 'No noun in this caption.' }));
      root.appendChild(art);
    });
    root.appendChild(pager(list.length, size, state.page, go));
    document.body.dataset.panels = String(panels);
  }
  var index = null;
  function neuronIndex() {
    if (index) return index;
    var by = {};
    D.images.forEach(function (img) {
      img.nouns.forEach(function (n) {
        n.neurons.forEach(function (r, i) {
          var key = r[0] + ':' + r[1];
          var e = by[key] || (by[key] = { layer: r[0], unit: r[1], tokens: r[3] || [], hits: [] });
          var map = (n.maps || []).filter(function (m) { return m.layer === r[0] && m.unit === r[1]; })[0];
          e.hits.push({ img: img, word: n.word, rank: i + 1, score: r[2], map: map });
        });
      });
    });
    index = Object.keys(by).map(function (k) { return by[k]; });
    index.sort(function (a, b) { return b.hits.length - a.hits.length || a.layer - b.layer || a.unit - b.unit; });
    return index;
  }
  function renderNeurons(root) {
    var all = neuronIndex().filter(function (e) {
      return !state.filter || e.hits.some(function (h) { return h.word.toLowerCase().indexOf(state.filter.toLowerCase()) >= 0; });
    });
    var size = 50, go = function (p) { state.npage = p; render(); };
    state.npage = Math.min(state.npage, Math.max(0, Math.ceil(all.length / size) - 1));
    root.appendChild(el('p', { cls: 'note', text: 'Every neuron in some noun\'s top list, by how many (image, noun) ' +
      'items rank it. Open one to see its scores per noun and where it fires (its maps, on one shared scale).' }));
    root.appendChild(pager(all.length, size, state.npage, go));
    all.slice(state.npage * size, (state.npage + 1) * size).forEach(function (e) {
      var words = {};
      e.hits.forEach(function (h) { words[h.word] = (words[h.word] || 0) + 1; });
      var d = el('details', { cls: 'neuron', 'data-neuron': e.layer + ':' + e.unit },
        el('summary', { text: 'L' + e.layer + ' U' + e.unit + ' — in ' + e.hits.length + ' top lists; nouns ' +
          JSON.stringify(words) + '; top tokens ' + JSON.stringify(e.tokens.slice(0, 10)) }));
      d.addEventListener('toggle', function () {
        if (!d.open || d.dataset.filled) return;
        d.dataset.filled = '1';
        var t = el('table', null, el('tr', null, el('th', { text: 'image' }), el('th', { text: 'noun' }),
          el('th', { text: 'rank' }), el('th', { text: 'score' })));
        e.hits.forEach(function (h) {
          t.appendChild(el('tr', null, el('td', { text: h.img.id }), el('td', { text: h.word }),
            el('td', { text: String(h.rank) }), el('td', { text: fmt(h.score) })));
        });
        d.appendChild(t);
        var withMaps = e.hits.filter(function (h) { return h.map; });
        if (withMaps.length) {
          var M = maxAbs(withMaps.map(function (h) { return h.map; })), row = el('div', { cls: 'maps' });
          withMaps.slice(0, 60).forEach(function (h) {
            var f = mapFigure(h.img, h.map, M, 128);
            f.appendChild(el('div', { text: h.img.id + ' “' + h.word + '”' }));
            row.appendChild(f);
          });
          row.appendChild(colourBar(M));
          d.appendChild(row);
        }
      });
      root.appendChild(d);
    });
  }
  function render() {
    var root = document.getElementById('view');
    root.textContent = '';
    document.querySelectorAll('nav.tabs button').forEach(function (b) {
      b.className = b.dataset.tab === state.tab ? 'on' : '';
    });
    if (state.tab === 'gallery') renderGallery(root); else renderNeurons(root);
    document.body.dataset.rendered = state.tab;
  }
  document.querySelectorAll('nav.tabs button').forEach(function (b) {
    b.onclick = function () { state.tab = b.dataset.tab; render(); };
  });
  document.getElementById('filter').addEventListener('input', function (e) {
    state.filter = e.target.value.trim(); state.page = 0; state.npage = 0; render();
  });
  var params = new URLSearchParams(location.search);
  if (params.get('tab') === 'neurons') state.tab = 'neurons';
  render();
})();
)JS";

}  // namespace

std::string report_page(const std::string& title, const std::string& sections, const std::string& data_json) {
  std::string s;
  s += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + xml_escape(title) +
       "</title><meta name=\"viewport\" content=\"width=device-width\"><style>";
  s += kStyle;
  s += "</style></head><body data-errors=\"0\"><h1>" + xml_escape(title) + "</h1>\n";
  s += "<p class=\"note\">Made by mmneuron report. Scores, maps and metrics are defined in the repository's "
       "docs/method.md; layers and units are 0-based, ranks 1-based. Maps: a neuron's activation at each image "
       "patch, on one absolute colour scale per group (red positive, blue negative, transparent at zero); masks: "
       "the upsampled map strictly above its 95th percentile.</p>\n";
  s += sections;
  s += "<h2>Images and neurons</h2><nav class=\"tabs\"><button data-tab=\"gallery\">Gallery</button>"
       "<button data-tab=\"neurons\">Neurons</button></nav><div class=\"controls\"><label>Filter by noun or image id "
       "<input id=\"filter\" type=\"search\"></label></div><div id=\"errors\"></div><div id=\"view\"></div>\n";
  s += "<script id=\"mmn-data\" type=\"application/json\">" + data_json + "</script>\n<script>";
  s += kScript;
  s += "</script></body></html>\n";
  return s;
}

}  // namespace mmn
