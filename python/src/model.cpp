#include "model.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <set>

#include "arrays.h"
#include "io/dataset.h"
#include "io/hf_cache.h"
#include "kernels/threading.h"
#include "models/capture.h"
#include "models/generate.h"
#include "models/intervention.h"
#include "neurons/find_result.h"
#include "neurons/recorders.h"
#include "util/error.h"

namespace mmn::py_bind {

namespace {

using clock = std::chrono::steady_clock;

// Runs f with the GIL released and the model's engine lock held (in that
// order: a thread waiting for the lock must not hold the GIL that a running
// hook needs).
template <class F>
auto without_gil(PyModel& pm, F&& f) {
  py::gil_scoped_release release;
  std::lock_guard<std::recursive_mutex> lock(pm.engine);
  return f();
}

// mmneuron.load() without a model: $MMN_MODEL, else the bundled shapes model
// of the source tree this module was built from (the CLI without --model).
std::string bundled_model_dir() {
  if (const char* env = std::getenv("MMN_MODEL"); env && *env) return env;
  const std::filesystem::path p = std::filesystem::path(MMN_SOURCE_ROOT) / "models" / "shapes-llava";
  if (std::filesystem::exists(p / "config.json")) return p.string();
  fail("no model given and the bundled model (", p.string(),
       ") was not found; set MMN_MODEL or pass a model to mmneuron.load");
}

void check_max_new_tokens(int n) {
  if (n < 1 || n > kMaxNewTokens) fail_usage("max_new_tokens: value ", n, " not in range [1, ", kMaxNewTokens, "]");
}

// A name that can only mean a hook point of the language model.
bool hook_like(const std::string& name) {
  Hook h;
  int layer;
  return parse_hook_name(name, &h, &layer) || name.rfind("blocks.", 0) == 0 || name.rfind("ln_final.", 0) == 0;
}

// "unknown hook point …" (the CLI's one line) plus the encoder's arrays.
[[noreturn]] void fail_unknown_name(const std::string& name, int n_layers, const Trace& trace) {
  std::string msg;
  try {
    Hook h;
    int layer;
    parse_hook_name_or_fail(name, n_layers, &h, &layer);
  } catch (const Error& e) {
    msg = e.what();
  }
  std::string arrays;
  for (const auto& a : trace.arrays) arrays += (arrays.empty() ? "" : ", ") + a.name;
  fail(msg, "; or one of this model's encoder arrays: ", arrays);
}

// What a hook function is told besides the rows (TransformerLens' HookPoint).
struct HookPoint {
  std::string name;
  int layer = 0;      // -1 for ln_final.hook_normalized
  int step = 0;       // 0 = prefill, t >= 1 = t-th decode step
  int64_t pos0 = 0;   // position of the first row
  int64_t rows = 0;
};

// Unwinds the engine after a Python hook failed; the failure is kept aside
// and re-raised once the engine is left and the GIL is held again.
struct HookAbort {};
struct HookFailure {
  std::exception_ptr error;
};

// One call of a Python hook on the engine's rows: `act` is a numpy view on
// them (no copy) for the duration of the call. A returned array replaces the
// rows (TransformerLens: a hook returns the new activation or modifies it in
// place and returns None).
void call_python_hook(HookFailure& failure, const py::object& fn, const std::string& name, const CaptureEvent& e) {
  py::gil_scoped_acquire gil;
  try {
    py::capsule not_owned(e.data, [](void*) {});
    py::array act(py::dtype::of<float>(), {e.rows, e.width},
                  {e.width * static_cast<py::ssize_t>(sizeof(float)), static_cast<py::ssize_t>(sizeof(float))}, e.data,
                  not_owned);
    py::object ret = fn(act, HookPoint{name, e.layer, e.step, e.pos0, e.rows});
    if (!ret.is_none()) {
      auto out = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(ret);
      if (!out)
        fail("hook on ", name, ": the function returned ", py::str(py::type::of(ret).attr("__name__")).cast<std::string>(),
             "; expected None (changed in place) or an array of shape (", e.rows, ", ", e.width, ")");
      if (out.ndim() != 2 || out.shape(0) != e.rows || out.shape(1) != e.width)
        fail("hook on ", name, ": the function returned an array of shape ", py::str(out.attr("shape")).cast<std::string>(),
             "; expected (", e.rows, ", ", e.width, ")");
      if (out.data() != e.data) std::memmove(e.data, out.data(), static_cast<size_t>(e.rows * e.width) * sizeof(float));
    }
    ret = py::object();
    if (act.ref_count() > 1)
      fail("hook on ", name, ": the function kept the activation array (or a view of it) after returning; it is a "
           "view on the engine's rows, valid only during the call: keep act.copy() instead");
  } catch (...) {
    failure.error = std::current_exception();
    throw HookAbort{};
  }
}

class PyTokenizer {
 public:
  explicit PyTokenizer(std::shared_ptr<PyModel> pm) : pm_(std::move(pm)) {}
  const Tokenizer& tok() const { return pm_->model->tokenizer(); }
  std::vector<int32_t> encode(const std::string& text, std::optional<bool> add_bos) const {
    return add_bos ? tok().encode(text, *add_bos) : tok().encode(text);
  }
  // Each token as the text it stands for ("▁" shown as a space), special tokens as their pieces.
  std::vector<std::string> to_str_tokens(py::handle input, std::optional<bool> add_bos) const {
    std::vector<int32_t> ids;
    if (py::isinstance<py::str>(input)) ids = encode(input.cast<std::string>(), add_bos);
    else ids = input.cast<std::vector<int32_t>>();
    std::vector<std::string> out;
    for (int32_t id : ids) out.push_back(pm_->explainer->token_text(id));
    return out;
  }

 private:
  std::shared_ptr<PyModel> pm_;
};

std::shared_ptr<PyModel> load(std::optional<std::string> model, const std::string& vision_tower, int threads) {
  if (threads < 0) fail_usage("threads: value ", threads, " is negative (0 = all cores)");
  auto pm = std::make_shared<PyModel>();
  py::gil_scoped_release release;
  init_threads(threads);  // the CLI's --threads: the first call in a process decides
  pm->dir = model && !model->empty() ? resolve_model_arg(*model) : bundled_model_dir();
  const auto t0 = clock::now();
  pm->model = load_model(pm->dir, LoadOptions{vision_tower});
  pm->load_s = std::chrono::duration<double>(clock::now() - t0).count();
  pm->explainer = std::make_unique<Explainer>(*pm->model, FindOptions{}.explain_tokens);
  return pm;
}

py::dict config(const PyModel& pm) {
  const VisionLanguageModel& m = *pm.model;
  const LlamaConfig& c = m.decoder().config();
  py::dict d;
  d["family"] = m.family();
  d["n_layers"] = c.n_layers;
  d["d_model"] = c.hidden;
  d["d_mlp"] = c.intermediate;
  d["d_vocab"] = c.vocab;
  d["n_heads"] = c.n_heads;
  d["n_key_value_heads"] = c.n_kv_heads;
  d["d_head"] = c.head_dim;
  d["rms_eps"] = c.rms_eps;
  d["rope_theta"] = c.rope_theta;
  d["image_tokens"] = m.image_tokens();
  d["grid_side"] = m.grid_side();
  d["input_size"] = m.input_size();
  d["dtype"] = dtype_name(m.decoder().layer(0).down.w.dtype);
  d["eos_token_ids"] = m.eos_ids();
  d["model_dir"] = pm.dir;
  d["vision_tower"] = m.vision_tower_dir();
  d["fingerprint"] = model_fingerprint(m);
  return d;
}

py::object caption(PyModel& pm, py::handle image, const std::string& query, const std::string& prefix,
                   int max_new_tokens) {
  check_max_new_tokens(max_new_tokens);
  const ImageArg img(image);
  const std::string j = without_gil(pm, [&] {
    const ModelInput input = prepare_input(*pm.model, img.load(), PromptText{query, prefix});
    GenerateOptions opt;
    opt.max_new_tokens = max_new_tokens;
    const GenerateResult gen = generate(*pm.model, input.in, opt);
    return caption_json(pm.model->tokenizer(), input, gen, pm.load_s).dump();
  });
  return json_to_py(j);
}

// One generation with recorders and hooks. `names`: hook points and encoder
// arrays to record, each of which must exist; `names_pred`: a predicate that
// picks among all hook points and encoder arrays (None: none); `hooks`:
// (hook point name, fn) pairs, run in this order before any recorder.
py::dict run(PyModel& pm, py::handle image, const std::string& query, const std::string& prefix, int max_new_tokens,
             const std::vector<std::string>& names, const py::object& names_pred, const py::list& hooks) {
  check_max_new_tokens(max_new_tokens);
  const ImageArg img(image);
  const LlamaConfig& c = pm.model->decoder().config();

  struct Point {
    std::string name;
    Hook hook;
    std::unique_ptr<PointRecorder> rec;
  };
  std::vector<Point> points;
  std::set<std::string> recorded;
  std::vector<std::string> trace_names;
  auto record = [&](const std::string& name) {
    Hook h;
    int layer;
    parse_hook_name_or_fail(name, c.n_layers, &h, &layer);
    if (recorded.insert(name).second) points.push_back({name, h, std::make_unique<PointRecorder>(h, layer)});
  };
  for (const auto& name : names) {
    if (hook_like(name)) record(name);
    else if (std::find(trace_names.begin(), trace_names.end(), name) == trace_names.end()) trace_names.push_back(name);
  }
  const bool pred = !names_pred.is_none();
  if (pred)
    for (const auto& name : all_hook_names(c.n_layers))
      if (py::bool_(names_pred(name))) record(name);

  FunctionHooks fhooks;
  HookFailure failure;
  for (const auto& item : hooks) {
    const auto pair = item.cast<py::tuple>();
    const std::string name = pair[0].cast<std::string>();
    const py::object fn = pair[1];
    if (!hook_like(name))
      fail("hook '", name, "': only the language model's hook points take hooks (blocks.{l}.… and "
           "ln_final.hook_normalized); the encoder's arrays can be read with run_with_cache");
    Hook h;
    int layer;
    parse_hook_name_or_fail(name, c.n_layers, &h, &layer);
    fhooks.add(h, layer, [&failure, fn, name](const CaptureEvent& e) { call_python_hook(failure, fn, name, e); });
  }

  Trace trace;
  ModelInput input;
  GenerateResult gen;
  try {
    without_gil(pm, [&] {
      input = prepare_input(*pm.model, img.load(), PromptText{query, prefix},
                            pred || !trace_names.empty() ? &trace : nullptr);
      for (const auto& n : trace_names)
        if (!trace.find(n)) fail_unknown_name(n, c.n_layers, trace);
      const int64_t rows = input.in.seq_len + max_new_tokens - 1;  // the last token is never fed back
      for (auto& p : points) p.rec->reserve(rows, hook_is_mlp_width(p.hook) ? c.intermediate : c.hidden);
      GenerateOptions opt;
      opt.max_new_tokens = max_new_tokens;
      opt.keep_step_logits = true;
      if (hooks.size() > 0) opt.sinks.push_back(&fhooks);  // first: the recorders see what the hooks made
      for (auto& p : points) opt.sinks.push_back(p.rec.get());
      gen = generate(*pm.model, input.in, opt);
    });
  } catch (const HookAbort&) {
    std::rethrow_exception(failure.error);
  }

  py::dict cache;
  for (auto& a : trace.arrays) {  // the encoder first: it runs first
    if (std::find(trace_names.begin(), trace_names.end(), a.name) == trace_names.end() &&
        !(pred && py::bool_(names_pred(a.name))))
      continue;
    const std::vector<py::ssize_t> shape(a.shape.begin(), a.shape.end());
    cache[py::str(a.name)] = a.is_int ? owned_array(std::move(a.ints), shape) : owned_array(std::move(a.data), shape);
  }
  for (auto& p : points) {
    const py::ssize_t rows = p.rec->rows(), width = p.rec->width();
    cache[py::str(p.name)] = owned_array(p.rec->take(), {rows, width});
  }
  const int64_t T = static_cast<int64_t>(gen.step_logits.size()), V = c.vocab;
  std::vector<float> logits(static_cast<size_t>(T * V));
  for (int64_t t = 0; t < T; ++t) std::copy(gen.step_logits[t].begin(), gen.step_logits[t].end(), logits.begin() + t * V);
  gen.step_logits.clear();

  py::dict out = json_to_py(caption_json(pm.model->tokenizer(), input, gen, pm.load_s).dump());
  out["logits"] = owned_array(std::move(logits), {T, V});
  out["cache"] = cache;
  out["input_ids"] = input.in.merged_ids;
  out["prompt_rows"] = input.in.seq_len;
  out["image_pos0"] = input.in.image_pos0;
  out["image_tokens"] = input.in.image_tokens;
  return out;
}

py::dict find(PyModel& pm, py::handle image, const FindRequest& req, const std::string& given_id) {
  check_max_new_tokens(req.max_new_tokens);
  const ImageArg img(image);
  const FindOptions opt = find_options(req, python_spelling);
  std::string id = given_id;
  if (id.empty() && img.is_path()) {
    std::vector<DatasetItem> item = {{"", img.name(), ""}};
    assign_ids(item);  // the id `find --image` gives the image
    id = item[0].id;
  }
  if (id.empty()) id = "image";

  ImageFindResult r;
  std::string result_json;
  std::vector<std::pair<std::string, ConceptMaps>> maps;
  without_gil(pm, [&] {
    if (!opt.all_tokens && opt.nouns.empty() && !pm.wordnet) pm.wordnet = std::make_unique<WordNet>(WordNet::load());
    r = find_neurons(*pm.model, pm.wordnet.get(), img.load(), opt);
    result_json = find_result_json(*pm.model, opt, r, *pm.explainer, img.name(), id).dump();
    if (opt.heatmaps)
      for (const auto& cr : r.concepts) maps.emplace_back(concept_dir_name(cr), concept_maps(*pm.model, opt, r, cr));
  });

  py::dict out = json_to_py(result_json);
  const py::ssize_t n = static_cast<py::ssize_t>(r.concepts.size());
  if (n > 0) {
    out["neurons"] = owned_array(neuron_table(r), {n, static_cast<py::ssize_t>(r.concepts[0].neurons.size()), 3});
    if (opt.also_gradient)
      out["gradient"] =
          owned_array(neuron_table(r, true), {n, static_cast<py::ssize_t>(r.concepts[0].gradient_neurons.size()), 3});
  }
  if (!r.image_acts.empty()) {
    const LlamaConfig& c = pm.model->decoder().config();
    out["image_acts"] = owned_array(std::move(r.image_acts), {2, c.n_layers, c.intermediate});
  }
  if (opt.heatmaps) {
    const int g = pm.model->grid_side();
    py::dict heat;
    for (auto& [dir, cm] : maps) {
      std::vector<float> raw;
      py::list index;
      for (const ConceptMap& m : cm.maps) {
        raw.insert(raw.end(), m.values.begin(), m.values.end());
        index.append(json_to_py(m.meta.dump()));
      }
      const py::ssize_t n_maps = static_cast<py::ssize_t>(cm.maps.size());
      py::dict entry;
      entry["maps"] = g > 0 ? owned_array(std::move(raw), {n_maps, g, g}) : owned_array(std::move(raw), {n_maps, r.image_tokens});
      entry["index"] = index;
      heat[py::str(dir)] = entry;
    }
    out["heatmaps"] = heat;
    out["input_image"] = image_array(std::move(r.image.cropped));
  }
  return out;
}

TensorRef weight_ref(const Weight& w, const std::string& name) {
  TensorRef t;
  t.name = name;
  t.dtype = w.dtype;
  t.shape = {w.rows, w.cols};
  t.data = w.data;
  t.nbytes = w.nbytes();
  return t;
}

const LlamaLayer& layer_of(const PyModel& pm, int layer) {
  const int L = pm.model->decoder().config().n_layers;
  if (layer < 0 || layer >= L) fail("layer ", layer, " is out of range (the model has ", L, " layers)");
  return pm.model->decoder().layer(layer);
}

bool to_f32(const std::optional<std::string>& dtype) {
  if (!dtype) return false;
  if (*dtype == "float32") return true;
  fail("dtype: expected None (the stored dtype; bf16 as uint16) or 'float32', got '", *dtype, "'");
}

}  // namespace

void bind_model(py::module_& m) {
  py::class_<HookPoint>(m, "HookPoint", "Where a hook function is called (TransformerLens' HookPoint)")
      .def_readonly("name", &HookPoint::name, "the hook point's name, e.g. blocks.3.mlp.hook_post")
      .def_readonly("layer", &HookPoint::layer, "its layer (-1 for ln_final.hook_normalized)")
      .def_readonly("step", &HookPoint::step, "0 = the prefill, t >= 1 = the t-th decode step")
      .def_readonly("pos0", &HookPoint::pos0, "the position of the first row")
      .def_readonly("rows", &HookPoint::rows, "the number of rows")
      .def("__repr__", [](const HookPoint& h) {
        return "HookPoint(name='" + h.name + "', step=" + std::to_string(h.step) + ", pos0=" + std::to_string(h.pos0) +
               ", rows=" + std::to_string(h.rows) + ")";
      });

  py::class_<PyTokenizer>(m, "Tokenizer", "The model's tokenizer (Hugging Face's slow LlamaTokenizer, exactly)")
      .def("encode", &PyTokenizer::encode, py::arg("text"), py::arg("add_bos") = py::none(),
           "Token ids of text (add_bos: None = the tokenizer's own setting)")
      .def("decode",
           [](const PyTokenizer& t, const std::vector<int32_t>& ids, bool skip) { return t.tok().decode(ids, skip); },
           py::arg("ids"), py::arg("skip_special_tokens") = true)
      .def("to_str_tokens", &PyTokenizer::to_str_tokens, py::arg("input"), py::arg("add_bos") = py::none(),
           "Each token of a text (or of a list of ids) as a string, '▁' shown as a space")
      .def("piece", [](const PyTokenizer& t, int32_t id) { return t.tok().piece(id); }, py::arg("id"))
      .def("token_id", [](const PyTokenizer& t, const std::string& piece) { return t.tok().token_id(piece); },
           py::arg("piece"))
      .def_property_readonly("vocab_size", [](const PyTokenizer& t) { return t.tok().vocab_size(); })
      .def_property_readonly("base_vocab_size", [](const PyTokenizer& t) { return t.tok().base_vocab_size(); })
      .def_property_readonly("bos_token_id", [](const PyTokenizer& t) { return t.tok().bos_id(); })
      .def_property_readonly("eos_token_id", [](const PyTokenizer& t) { return t.tok().eos_id(); });

  py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model", "A loaded checkpoint (use mmneuron.load)")
      .def_property_readonly("config", &config)
      .def_property_readonly("tokenizer", [](std::shared_ptr<PyModel> pm) { return PyTokenizer(pm); })
      .def("hook_names", [](const PyModel& pm) { return all_hook_names(pm.model->decoder().config().n_layers); })
      .def("caption", &caption, py::arg("image"), py::arg("query"), py::arg("prefix"), py::arg("max_new_tokens"))
      .def("run", &run, py::arg("image"), py::arg("query"), py::arg("prefix"), py::arg("max_new_tokens"),
           py::arg("names"), py::arg("names_pred"), py::arg("hooks"))
      .def(
          "find",
          [](PyModel& pm, py::handle image, const std::string& query, const std::string& prefix, int max_new_tokens,
             int64_t top_k, int64_t report, const std::string& activation, const std::string& method,
             bool gradient_baseline, bool fold_norm_gain, const std::string& tokens,
             const std::vector<std::string>& nouns, bool heatmaps, std::optional<uint64_t> shuffle_image_tokens,
             int random_baseline, const std::string& id) {
            FindRequest a;
            a.prompt = {query, prefix};
            a.max_new_tokens = max_new_tokens;
            a.top_k = top_k;
            a.report = report;
            a.activation = activation;
            a.method = method;
            a.gradient_baseline = gradient_baseline;
            a.fold_norm_gain = fold_norm_gain;
            a.tokens = tokens;
            a.nouns = nouns;
            a.heatmaps = heatmaps;
            a.shuffle_seed = shuffle_image_tokens;
            a.random_baseline = random_baseline;
            return find(pm, image, a, id);
          },
          py::arg("image"), py::arg("query"), py::arg("prefix"), py::arg("max_new_tokens"), py::arg("top_k"),
          py::arg("report"), py::arg("activation"), py::arg("method"), py::arg("gradient_baseline"),
          py::arg("fold_norm_gain"), py::arg("tokens"), py::arg("nouns"), py::arg("heatmaps"),
          py::arg("shuffle_image_tokens"), py::arg("random_baseline"), py::arg("id"))
      .def(
          "mlp_weight",
          [](py::object self, int layer, const std::string& which, std::optional<std::string> dtype) {
            const PyModel& pm = self.cast<const PyModel&>();
            const LlamaLayer& Lr = layer_of(pm, layer);
            if (which != "out" && which != "in" && which != "gate") fail("internal: no MLP weight '", which, "'");
            const LinearW& w = which == "out" ? Lr.down : which == "in" ? Lr.up : Lr.gate;
            const std::string name = "layers." + std::to_string(layer) + ".mlp." +
                                     (which == "out" ? "down_proj" : which == "in" ? "up_proj" : "gate_proj");
            return tensor_array(weight_ref(w.w, name), true, to_f32(dtype), self);
          },
          py::arg("layer"), py::arg("which"), py::arg("dtype") = py::none())
      .def(
          "embedding_weight",
          [](py::object self, bool unembed, std::optional<std::string> dtype) {
            const LlamaDecoder& dec = self.cast<const PyModel&>().model->decoder();
            return unembed ? tensor_array(weight_ref(dec.lm_head(), "lm_head"), true, to_f32(dtype), self)
                           : tensor_array(weight_ref(dec.embed_tokens(), "embed_tokens"), false, to_f32(dtype), self);
          },
          py::arg("unembed"), py::arg("dtype") = py::none())
      .def(
          "weight",
          [](py::object self, const std::string& name, std::optional<std::string> dtype) {
            return tensor_array(self.cast<const PyModel&>().model->checkpoint().get(name), false, to_f32(dtype), self);
          },
          py::arg("name"), py::arg("dtype") = py::none())
      .def("weight_names", [](const PyModel& pm) {
        std::vector<std::string> out;
        for (const auto& [name, t] : pm.model->checkpoint().tensors()) out.push_back(name);
        return out;
      });

  m.def("load", &load, py::arg("model") = py::none(), py::arg("vision_tower") = "", py::arg("threads") = 0);
}

}  // namespace mmn::py_bind
