#include "kernels/compute.h"

#include <atomic>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "util/error.h"

namespace mmn {

namespace {
std::atomic<Compute> g_compute{Compute::Exact};
}

const char* compute_name(Compute c) { return c == Compute::Bf16 ? "bf16" : "exact"; }

Compute parse_compute(const std::string& name) {
  for (Compute c : {Compute::Exact, Compute::Bf16})
    if (name == compute_name(c)) return c;
  fail_usage("--compute: expected exact or bf16, got '", name, "'");
}

std::string bf16_unavailable_reason() {
  if (!cpu_features().avx512_bf16) return "this CPU does not report AVX-512 BF16";
  if (!gemm_bf16_supported()) return "this CPU lacks the AVX-512 registers the bf16 kernels need";
  // MMN_ISA lowers every kernel family, the bf16 one included.
  if (active_isa() != Isa::Avx512) return std::string("MMN_ISA=") + isa_name(active_isa()) + " turns AVX-512 off";
  return "";
}

bool compute_available(Compute c) { return c == Compute::Exact || bf16_unavailable_reason().empty(); }

Compute set_compute(Compute want) {
  const Compute got = compute_available(want) ? want : Compute::Exact;
  g_compute.store(got, std::memory_order_relaxed);
  return got;
}

Compute compute_mode() { return g_compute.load(std::memory_order_relaxed); }

}  // namespace mmn
