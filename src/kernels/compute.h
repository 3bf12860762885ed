// The process-wide compute setting of the model's matrix products (set once
// from the command line, --compute, like the thread count):
//  - Exact: fp32 products against the stored weights (the default; matches the
//    references within the golden tolerance);
//  - Bf16: prefill and vision-tower GEMMs (linear() above gemv_max_rows()
//    rows) round x and W to bf16 and multiply with AVX-512 BF16, accumulating
//    in fp32. Everything else stays fp32: decode GEMV, norms, softmax,
//    attention products, the residual stream, scores and gradients.
#pragma once
#include <string>

namespace mmn {

enum class Compute { Exact, Bf16 };

const char* compute_name(Compute c);
// "exact" / "bf16"; throws mmn::UsageError naming the bad value.
Compute parse_compute(const std::string& name);

// Whether `c` can run here. Bf16 needs the CPU to report AVX-512 BF16 and the
// AVX-512 kernel family not to be forced off (MMN_ISA=avx2/generic).
bool compute_available(Compute c);
// Why Bf16 is unavailable here (one line), empty when it is available.
std::string bf16_unavailable_reason();

// Sets the mode; returns the mode in effect, which is Exact when Bf16 is
// asked for but unavailable (the caller says so). Tests may switch modes;
// the CLI sets it once before any model runs.
Compute set_compute(Compute want);
Compute compute_mode();

}  // namespace mmn
