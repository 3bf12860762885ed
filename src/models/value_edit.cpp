#include "models/value_edit.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "kernels/convert.h"
#include "models/quantize.h"
#include "util/error.h"

namespace mmn {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<uint8_t> read_value_column(const VisionLanguageModel& model, NeuronRef n) {
  const Weight& W = model.decoder().layer(n.layer).down.w;  // [D, I]
  const size_t es = W.elem_size();
  std::vector<uint8_t> out(static_cast<size_t>(W.rows) * es);
  for (int64_t d = 0; d < W.rows; ++d) std::memcpy(&out[d * es], W.row_ptr(d) + n.unit * es, es);
  return out;
}

ValueEdit make_value_edit(const VisionLanguageModel& model, const std::vector<NeuronRef>& neurons,
                          const std::vector<float>& new_columns, json info) {
  refuse_quantized(model, "edit");
  const LlamaDecoder& dec = model.decoder();
  const LlamaConfig& c = dec.config();
  const int64_t D = c.hidden;
  ValueEdit e;
  e.model_dir = model.dir();
  e.vision_tower = model.vision_tower_dir();
  e.model_fingerprint = model_fingerprint(model);
  e.family = model.family();
  e.n_layers = c.n_layers;
  e.d_model = D;
  e.d_ff = c.intermediate;
  e.dtype = dec.layer(0).down.w.dtype;
  e.neurons = neurons;
  e.info = std::move(info);
  if (new_columns.size() != neurons.size() * static_cast<size_t>(D)) fail("internal: edit columns of the wrong size");
  std::vector<float> old_col(D), new_col(D);
  for (size_t k = 0; k < neurons.size(); ++k) {
    const NeuronRef n = neurons[k];
    if (dec.layer(n.layer).down.w.dtype != e.dtype) fail(model.dir(), ": down_proj weights of mixed dtypes cannot be edited");
    std::vector<uint8_t> orig = read_value_column(model, n);
    std::vector<uint8_t> edited(orig.size());
    for (int64_t d = 0; d < D; ++d)
      if (!std::isfinite(new_columns[k * D + d])) fail("edit: neuron ", n.layer, ":", n.unit, " got a non-finite value");
    convert_from_f32(e.dtype, &new_columns[k * D], edited.data(), D);
    convert_to_f32(e.dtype, orig.data(), old_col.data(), D);
    convert_to_f32(e.dtype, edited.data(), new_col.data(), D);
    for (int64_t d = 0; d < D; ++d) e.delta.push_back(new_col[d] - old_col[d]);
    e.original.insert(e.original.end(), orig.begin(), orig.end());
    e.edited.insert(e.edited.end(), edited.begin(), edited.end());
  }
  return e;
}

void save_value_edit(const std::string& dir, const ValueEdit& e, bool force) {
  const fs::path jp = fs::path(dir) / "edit.json";
  if (fs::exists(jp) && !force) fail(jp.string(), ": already exists (use --force to overwrite)");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create the edit directory (", ec.message(), ")");
  const int64_t n = static_cast<int64_t>(e.neurons.size()), col_bytes = e.d_model * static_cast<int64_t>(dtype_size(e.dtype));
  std::vector<TensorSpec> specs = {{"delta", DType::F32, {n, e.d_model}},
                                   {"original", DType::U8, {n, col_bytes}},
                                   {"edited", DType::U8, {n, col_bytes}}};
  write_safetensors((fs::path(dir) / "values.safetensors").string(), specs, {{"format", "mmneuron-edit"}},
                    [&](const TensorSpec& s, std::FILE* f) {
                      if (s.name == "delta") std::fwrite(e.delta.data(), sizeof(float), e.delta.size(), f);
                      else if (s.name == "original") std::fwrite(e.original.data(), 1, e.original.size(), f);
                      else std::fwrite(e.edited.data(), 1, e.edited.size(), f);
                    });
  json neurons = json::array();
  for (auto& nr : e.neurons) neurons.push_back({nr.layer, nr.unit});
  json j = e.info;
  j["tool"] = "mmneuron edit";
  j["version"] = MMN_VERSION;
  j["model"] = {{"dir", e.model_dir},       {"fingerprint", e.model_fingerprint}, {"family", e.family},
                {"layers", e.n_layers},     {"d_model", e.d_model},               {"d_ff", e.d_ff},
                {"dtype", dtype_name(e.dtype)}};
  if (!e.vision_tower.empty()) j["model"]["vision_tower"] = e.vision_tower;
  j["neurons"] = neurons;
  j["weights_changed"] = n * e.d_model;
  write_file_atomic(jp.string(), j.dump(1) + "\n");
}

ValueEdit load_value_edit(const std::string& dir) {
  const fs::path jp = fs::path(dir) / "edit.json", vp = fs::path(dir) / "values.safetensors";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir, ": edit directory not found");
  if (!fs::exists(jp)) fail(jp.string(), ": no such file (not an edit directory)");
  ValueEdit e;
  json j;
  try {
    j = parse_json(read_file(jp.string()), jp.string());
    const json& m = j.at("model");
    auto integer = [&](const json& v, int64_t lo, int64_t hi, const char* what) {
      const std::optional<int64_t> i = json_int(v, lo, hi);
      if (!i) fail(jp.string(), ": ", what, " is ", describe_json(v), ", not an integer in [", lo, ", ", hi, "]");
      return *i;
    };
    e.model_dir = m.at("dir").get<std::string>();
    if (m.contains("vision_tower") && !m["vision_tower"].is_null()) e.vision_tower = m.at("vision_tower").get<std::string>();
    e.model_fingerprint = m.at("fingerprint").get<std::string>();
    e.family = m.at("family").get<std::string>();
    e.n_layers = static_cast<int>(integer(m.at("layers"), 1, kMaxLayers, "model.layers"));
    e.d_model = integer(m.at("d_model"), 1, kMaxWidth, "model.d_model");
    e.d_ff = integer(m.at("d_ff"), 1, kMaxWidth, "model.d_ff");
    e.dtype = parse_dtype(m.at("dtype").get<std::string>(), jp.string());
    for (auto& n : j.at("neurons")) {
      const int64_t l = integer(n.at(0), -kMaxLayers, kMaxLayers, "a neuron's layer"),
                    u = integer(n.at(1), -kMaxWidth, kMaxWidth, "a neuron's unit");
      if (l < 0 || l >= e.n_layers || u < 0 || u >= e.d_ff) fail(jp.string(), ": neuron ", l, ":", u, " is outside the model");
      e.neurons.push_back({static_cast<int>(l), static_cast<int>(u)});
    }
    // The token ids an edit made by `edit` turns from and to (to: null when it only suppresses).
    for (const char* key : {"from_token_id", "to_token_id"})
      if (j.contains(key) && !j[key].is_null() && !json_int(j[key], 0, kMaxVocabulary - 1))
        fail(jp.string(), ": ", key, " is ", describe_json(j[key]), ", not a token id");
  } catch (const json::exception& ex) {
    fail(jp.string(), ": not an edit description (", ex.what(), ")");
  }
  if (e.dtype != DType::F32 && e.dtype != DType::F16 && e.dtype != DType::BF16)
    fail(jp.string(), ": value vectors of dtype ", dtype_name(e.dtype), " cannot be edited");
  e.info = j;
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(vp.string());
  const int64_t n = static_cast<int64_t>(e.neurons.size()), col_bytes = e.d_model * static_cast<int64_t>(dtype_size(e.dtype));
  const TensorRef& delta = ck.get("delta", {n, e.d_model});
  const TensorRef& orig = ck.get("original", {n, col_bytes});
  const TensorRef& edited = ck.get("edited", {n, col_bytes});
  if (delta.dtype != DType::F32 || orig.dtype != DType::U8 || edited.dtype != DType::U8)
    fail(vp.string(), ": expected delta F32, original and edited U8");
  e.delta.resize(static_cast<size_t>(n * e.d_model));
  std::memcpy(e.delta.data(), delta.data, delta.nbytes);
  const uint8_t* o = static_cast<const uint8_t*>(orig.data);
  const uint8_t* w = static_cast<const uint8_t*>(edited.data);
  e.original.assign(o, o + orig.nbytes);
  e.edited.assign(w, w + edited.nbytes);
  for (float v : e.delta)
    if (!std::isfinite(v)) fail(vp.string(), ": delta holds a non-finite value");
  return e;
}

void check_edit_matches_model(const ValueEdit& e, const VisionLanguageModel& model, const std::string& edit_dir) {
  const LlamaConfig& c = model.decoder().config();
  const std::string where = (fs::path(edit_dir) / "edit.json").string();
  if (e.family != model.family() || e.n_layers != c.n_layers || e.d_model != c.hidden || e.d_ff != c.intermediate)
    fail(where, ": made for another model (", e.family, ", ", e.n_layers, " layers, d_model ", e.d_model, ", d_ff ", e.d_ff,
         ") than ", model.dir());
  if (e.dtype != model.decoder().layer(0).down.w.dtype)
    fail(where, ": made for ", dtype_name(e.dtype), " value vectors but ", model.dir(), " stores ",
         dtype_name(model.decoder().layer(0).down.w.dtype));
  const std::string fp = model_fingerprint(model);
  if (fp != e.model_fingerprint)
    fail(where, ": made for another model (weights fingerprint ", e.model_fingerprint, ", ", model.dir(), " has ", fp, ")");
  // The source columns must be the ones the edit started from.
  for (size_t k = 0; k < e.neurons.size(); ++k) {
    const std::vector<uint8_t> col = read_value_column(model, e.neurons[k]);
    if (std::memcmp(col.data(), &e.original[k * col.size()], col.size()) != 0)
      fail(where, ": neuron ", e.neurons[k].layer, ":", e.neurons[k].unit, " of ", model.dir(),
           " does not hold the value vector the edit was made from (another model, or one already edited?)");
  }
}

void add_edit_to_intervention(const ValueEdit& e, NeuronIntervention& iv) {
  for (size_t k = 0; k < e.neurons.size(); ++k) iv.add_delta(e.neurons[k], &e.delta[k * e.d_model]);
}

}  // namespace mmn
