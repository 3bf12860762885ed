#include "kernels/cpu_features.h"

#include <cstdlib>

#include "util/error.h"

namespace mmn {

const CpuFeatures& cpu_features() {
  // libgcc's __builtin_cpu_supports reads CPUID and, for AVX and AVX-512,
  // also checks XGETBV that the OS saves the wide registers.
  static const CpuFeatures f = [] {
    __builtin_cpu_init();
    CpuFeatures c;
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.f16c = __builtin_cpu_supports("f16c");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
    c.avx512_vnni = __builtin_cpu_supports("avx512vnni");
    return c;
  }();
  return f;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& c = cpu_features();
  switch (isa) {
    case Isa::Generic: return true;
    case Isa::Avx2: return c.avx2 && c.fma && c.f16c;
    case Isa::Avx512: return c.avx512f && c.avx512bw && c.avx512vl && c.fma && c.f16c;
  }
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Generic: return "generic";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  for (Isa i : {Isa::Generic, Isa::Avx2, Isa::Avx512})
    if (name == isa_name(i)) return i;
  fail("MMN_ISA: unknown kernel family '", name, "' (known: generic, avx2, avx512)");
}

Isa active_isa() {
  static const Isa isa = [] {
    Isa best = isa_supported(Isa::Avx512) ? Isa::Avx512 : isa_supported(Isa::Avx2) ? Isa::Avx2 : Isa::Generic;
    if (const char* env = std::getenv("MMN_ISA"); env && *env) {
      const Isa want = parse_isa(env);
      if (!isa_supported(want)) fail("MMN_ISA=", env, ": this CPU does not report the instructions it needs");
      best = want;
    }
    return best;
  }();
  return isa;
}

std::string cpu_summary() {
  const CpuFeatures& c = cpu_features();
  std::string s = isa_name(active_isa());
  s += " (";
  const std::pair<bool, const char*> all[] = {{c.avx2, "avx2"},         {c.fma, "fma"},
                                              {c.f16c, "f16c"},         {c.avx512f, "avx512f"},
                                              {c.avx512bw, "avx512bw"}, {c.avx512vl, "avx512vl"},
                                              {c.avx512_bf16, "avx512_bf16"}, {c.avx512_vnni, "avx512_vnni"}};
  bool first = true;
  for (const auto& [on, name] : all)
    if (on) s += (first ? "" : " ") + std::string(name), first = false;
  return s + ")";
}

}  // namespace mmn
