// Range checks for numeric options, one message format for every command:
// "--n: value 0 not in range [1, 1000000]" (a parse error: exit status 2).
// Attach with ->check(...); a list option split by CLI11 (->delimiter(','))
// has each element checked, a comma-separated string option takes list_of.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/compute.h"
#include "models/generate.h"

namespace mmn::cli {

// What a check accepts.
struct NumberRange {
  bool integer = true;         // digits only (no fraction, no exponent, no 0x)
  bool is_unsigned = false;    // the option's type is unsigned (seeds)
  long double lo = 0, hi = 0;  // bounds
  bool lo_open = false, hi_open = false;
  bool unbounded = false;      // hi is the type's limit: shown as "inf)"
};

CLI::Validator check_range(const NumberRange& r);

// An integer option of type T in [lo, hi].
template <class T>
CLI::Validator int_range(T lo, T hi) {
  return check_range({true, std::is_unsigned_v<T>, static_cast<long double>(lo), static_cast<long double>(hi)});
}
// An integer option of type T in [lo, inf) (inf: the type's maximum).
template <class T>
CLI::Validator int_at_least(T lo) {
  NumberRange r{true, std::is_unsigned_v<T>, static_cast<long double>(lo),
                static_cast<long double>(std::numeric_limits<T>::max())};
  r.unbounded = true;
  return check_range(r);
}
// A seed: any value of an unsigned 64-bit integer, written in decimal.
inline CLI::Validator seed_range() { return int_range<uint64_t>(0, std::numeric_limits<uint64_t>::max()); }
// A real option in [lo, hi], (lo, hi], [lo, hi) or (lo, hi); hi = inf: no upper limit (inf itself is refused).
CLI::Validator real_range(double lo, double hi, bool lo_open = false, bool hi_open = false);

// The elements of a comma-separated list, trimmed of spaces; empty ones kept
// ("a,,b" gives three), so a caller decides whether they are errors.
std::vector<std::string> split_list(const std::string& s);

// A comma-separated list option (a string the command splits): every element
// passes `element`, and the list is not empty.
CLI::Validator list_of(const CLI::Validator& element);

// --shard: "i/N" with 0 <= i < N.
CLI::Validator shard_spec();

// Limits shared by several commands; kMaxNewTokens (models/generate.h) is
// shared with the Python module.
constexpr int kMaxThreads = 1024;

// --threads N (0 = all cores), the same on every command.
inline CLI::Option* add_threads_option(CLI::App* cmd, int& threads) {
  return cmd->add_option("--threads", threads, "Worker threads (0 = all cores)")
      ->capture_default_str()
      ->check(int_range(0, kMaxThreads));
}

// --compute exact|bf16 (kernels/compute.h), the same on every command that runs the model.
inline CLI::Option* add_compute_option(CLI::App* cmd, std::string& compute) {
  return cmd
      ->add_option("--compute", compute,
                   "Prefill and vision-tower products: exact (fp32) or bf16 (inputs rounded to bf16, AVX-512 BF16 "
                   "dot products, fp32 sums; decode, norms, softmax, attention and scores stay fp32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "bf16"}));
}

// Sets the process-wide compute mode from --compute. Where bf16 cannot run,
// the exact path, and one warning line on stderr, held back until
// report_compute_fallback() so that a command failing its usage checks
// prints only its error. Returns the mode in effect.
Compute init_compute(const std::string& compute);
// Prints the held-back warning of init_compute, once (load_cli_model calls it).
void report_compute_fallback();

}  // namespace mmn::cli
