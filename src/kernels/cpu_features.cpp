#include "kernels/cpu_features.h"

#include <cpuid.h>

#include <cstdlib>

#include "util/error.h"

namespace mmn {

namespace {

struct CpuidRegs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.a, &r.b, &r.c, &r.d)) return CpuidRegs{};
  return r;
}

// XCR0 says which register states the OS saves on a context switch. Written
// as asm so that this file needs no -mxsave (the intrinsic requires it).
unsigned long long xcr0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

}  // namespace

const CpuFeatures& cpu_features() {
  // Read CPUID ourselves rather than through __builtin_cpu_supports: clang
  // (the fuzz build) knows fewer feature names than GCC. A feature counts only
  // if the CPU reports it *and* the OS saves the registers it needs (XCR0):
  // YMM for AVX/AVX2/FMA/F16C, plus opmask and ZMM for AVX-512.
  static const CpuFeatures f = [] {
    CpuFeatures c;
    const CpuidRegs l1 = cpuid(1, 0);
    const bool osxsave = bit(l1.c, 27);
    const unsigned long long xcr = osxsave ? xcr0() : 0;
    const bool ymm_saved = (xcr & 0x6) == 0x6;
    const bool zmm_saved = (xcr & 0xE6) == 0xE6;
    const bool avx = ymm_saved && bit(l1.c, 28);
    if (!avx) return c;
    const CpuidRegs l7 = cpuid(7, 0);
    const CpuidRegs l7s1 = l7.a >= 1 ? cpuid(7, 1) : CpuidRegs{};
    c.fma = bit(l1.c, 12);
    c.f16c = bit(l1.c, 29);
    c.avx2 = bit(l7.b, 5);
    if (zmm_saved) {
      c.avx512f = bit(l7.b, 16);
      c.avx512bw = bit(l7.b, 30);
      c.avx512vl = bit(l7.b, 31);
      c.avx512_vnni = c.avx512f && bit(l7.c, 11);
      c.avx512_bf16 = c.avx512f && bit(l7s1.a, 5);
    }
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
