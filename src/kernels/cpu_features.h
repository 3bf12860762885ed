// What the CPU we run on can execute, from CPUID (and the OS's XSAVE state),
// and which kernel family we therefore use. Kernels that need an instruction
// set live in translation units compiled for it and are called only after
// this check, so one binary runs on any x86-64 machine: a Xeon VM that hides
// AVX-512 BF16 never sees a vdpbf16ps.
#pragma once
#include <string>

namespace mmn {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false;
  bool avx512_bf16 = false, avx512_vnni = false;
};

// The running CPU's features (detected once).
const CpuFeatures& cpu_features();

// Kernel families, best last. Generic: portable C++ plus OpenBLAS.
enum class Isa { Generic, Avx2, Avx512 };

// The family in use: the best the CPU supports, or the one named by the
// environment variable MMN_ISA (generic, avx2, avx512) — lower only: asking
// for more than the CPU has is an error, not a crash.
Isa active_isa();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
// Parses "generic" / "avx2" / "avx512"; throws mmn::Error naming the bad value.
Isa parse_isa(const std::string& name);
// One line for logs and benchmarks: "avx512 (avx512f avx512bw ... avx512_bf16)".
std::string cpu_summary();

}  // namespace mmn
