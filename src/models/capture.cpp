#include "models/capture.h"

#include <cstdio>
#include <cstring>

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
  for (auto& k : kHooks)
    if (rest == k.suffix) {
      *h = k.hook;
      *layer = l;
      return true;
    }
  return false;
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

void CaptureSet::emit(Hook h, int layer, int step, int64_t pos0, int64_t rows, int64_t width,
                      const float* data) const {
  CaptureEvent e{h, layer, step, pos0, rows, width, data};
  for (auto* s : sinks_)
    if (s->wants(h, layer)) s->capture(e);
}

}  // namespace mmn
