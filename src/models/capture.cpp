#include "models/capture.h"

#include <cstdio>
#include <cstring>

#include "util/error.h"

namespace mmn {

namespace {
struct HookInfo {
  Hook hook;
  const char* suffix;
};
constexpr HookInfo kHooks[] = {
    {Hook::ResidPre, "hook_resid_pre"},        {Hook::Ln1, "ln1.hook_normalized"},
    {Hook::AttnOut, "hook_attn_out"},          {Hook::ResidMid, "hook_resid_mid"},
    {Hook::Ln2, "ln2.hook_normalized"},        {Hook::MlpPre, "mlp.hook_pre"},
    {Hook::MlpPreLinear, "mlp.hook_pre_linear"}, {Hook::MlpAct, "mlp.hook_act"},
    {Hook::MlpPost, "mlp.hook_post"},          {Hook::MlpOut, "hook_mlp_out"},
    {Hook::ResidPost, "hook_resid_post"},
};
// The two activations also answer to their dump (golden) names, the names
// `--activation act|swiglu` stands for (docs/files.md).
constexpr HookInfo kAliases[] = {
    {Hook::MlpAct, "mlp.act_fn_gate"},
    {Hook::MlpPost, "mlp.down_proj_input"},
};
}  // namespace

std::string hook_name(Hook h, int layer) {
  if (h == Hook::FinalNorm) return "ln_final.hook_normalized";
  for (auto& k : kHooks)
    if (k.hook == h) return "blocks." + std::to_string(layer) + "." + k.suffix;
  return "?";
}

bool parse_hook_name(const std::string& name, Hook* h, int* layer) {
  if (name == "ln_final.hook_normalized") {
    *h = Hook::FinalNorm;
    *layer = -1;
    return true;
  }
  int l = 0, n = 0;
  if (std::sscanf(name.c_str(), "blocks.%d.%n", &l, &n) != 1 || n == 0 || l < 0) return false;
  std::string rest = name.substr(static_cast<size_t>(n));
  auto find_in = [&](const auto& table) {
    for (auto& k : table)
      if (rest == k.suffix) {
        *h = k.hook;
        *layer = l;
        return true;
      }
    return false;
  };
  return find_in(kHooks) || find_in(kAliases);
}

void parse_hook_name_or_fail(const std::string& name, int n_layers, Hook* h, int* layer) {
  if (!parse_hook_name(name, h, layer))
    fail("unknown hook point '", name, "'; expected blocks.{l}.{", [] {
      std::string s;
      for (auto& k : kHooks) s += std::string(s.empty() ? "" : "|") + k.suffix;
      return s;
    }(), "} or ln_final.hook_normalized (aliases: mlp.act_fn_gate = mlp.hook_act, mlp.down_proj_input = mlp.hook_post)");
  if (*layer >= n_layers) fail("hook point '", name, "': layer ", *layer, " is out of range (the model has ", n_layers, " layers)");
}

std::vector<std::string> all_hook_names(int n_layers) {
  std::vector<std::string> out;
  for (int l = 0; l < n_layers; ++l)
    for (auto& k : kHooks) out.push_back(hook_name(k.hook, l));
  out.push_back(hook_name(Hook::FinalNorm, -1));
  return out;
}

bool hook_is_mlp_width(Hook h) {
  return h == Hook::MlpPre || h == Hook::MlpPreLinear || h == Hook::MlpAct || h == Hook::MlpPost;
}

void CaptureSet::reset(const std::vector<CaptureSink*>& sinks, int n_layers) {
  sinks_ = sinks;
  const int H = static_cast<int>(Hook::Count);
  want_.assign(static_cast<size_t>(n_layers + 1) * H, 0);
  for (int l = -1; l < n_layers; ++l)
    for (int h = 0; h < H; ++h)
      for (auto* s : sinks_)
        if (s->wants(static_cast<Hook>(h), l)) want_[static_cast<size_t>(l + 1) * H + h] = 1;
}

void CaptureSet::emit(Hook h, int layer, int step, int64_t pos0, int64_t rows, int64_t width, float* data) const {
  CaptureEvent e{h, layer, step, pos0, rows, width, data};
  for (auto* s : sinks_)
    if (s->wants(h, layer)) s->capture(e);
}

}  // namespace mmn
