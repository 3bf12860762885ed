#include "cli/option_checks.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "util/progress.h"

namespace mmn::cli {

namespace {

std::string show(long double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == static_cast<long double>(std::numeric_limits<uint64_t>::max())) return "2^64-1";
  if (v == std::floor(v) && std::fabs(v) < 1.9e19L) {
    char b[32];
    if (v < 0) std::snprintf(b, sizeof b, "%lld", static_cast<long long>(v));
    else std::snprintf(b, sizeof b, "%llu", static_cast<unsigned long long>(v));
    return b;
  }
  char b[40];
  std::snprintf(b, sizeof b, "%Lg", v);
  return b;
}

std::string describe(const NumberRange& r) {
  return std::string(r.lo_open ? "(" : "[") + show(r.lo) + ", " + (r.unbounded ? "inf" : show(r.hi)) +
         (r.hi_open || r.unbounded ? ")" : "]");
}

// Parses `s` as r says; "" when it is in range (an integer is rewritten in
// plain decimal, so that CLI11 never reads a leading 0 as octal), else the message.
std::string check(std::string& s, const NumberRange& r) {
  const std::string range = describe(r);
  auto out_of_range = [&] { return "value " + s + " not in range " + range; };
  if (s.empty()) return "empty value; expected a number in " + range;
  long double v = 0;
  if (r.integer) {
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    const char* e = s.data() + s.size();
    if (r.is_unsigned) {
      if (*b == '-') {
        // Only digits may follow: "-1" is out of range, "-x" is not a number.
        for (const char* p = b + 1; p < e; ++p)
          if (*p < '0' || *p > '9') return "value '" + s + "' is not an integer";
        return b + 1 < e ? out_of_range() : "value '" + s + "' is not an integer";
      }
      uint64_t u = 0;
      auto [p, ec] = std::from_chars(b, e, u);
      if (ec == std::errc::result_out_of_range) return out_of_range();
      if (ec != std::errc() || p != e || b == e) return "value '" + s + "' is not an integer";
      v = static_cast<long double>(u);
      s = std::to_string(u);
    } else {
      int64_t i = 0;
      auto [p, ec] = std::from_chars(b, e, i);
      if (ec == std::errc::result_out_of_range) return out_of_range();
      if (ec != std::errc() || p != e || b == e) return "value '" + s + "' is not an integer";
      v = static_cast<long double>(i);
      s = std::to_string(i);
    }
  } else {
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || std::isspace(static_cast<unsigned char>(s[0])) || std::isnan(d))
      return "value '" + s + "' is not a number";
    v = d;
  }
  const bool ok_lo = r.lo_open ? v > r.lo : v >= r.lo;
  const bool ok_hi = (r.hi_open || (r.unbounded && !r.integer)) ? v < r.hi : v <= r.hi;
  if (!ok_lo || !ok_hi) return out_of_range();
  return "";
}

}  // namespace

CLI::Validator check_range(const NumberRange& r) {
  return CLI::Validator([r](std::string& s) { return check(s, r); }, describe(r));
}

CLI::Validator real_range(double lo, double hi, bool lo_open, bool hi_open) {
  NumberRange r{false, false, lo, hi, lo_open, hi_open};
  if (std::isinf(hi)) {
    r.unbounded = true;
    r.hi_open = true;
  }
  return check_range(r);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    out.push_back(std::move(item));
    i = j + 1;
  }
  return out;
}

CLI::Validator list_of(const CLI::Validator& element) {
  return CLI::Validator(
      [element](std::string& s) -> std::string {
        if (s.empty()) return "empty list";
        for (std::string& item : split_list(s)) {
          if (item.empty()) return "empty element in '" + s + "'";
          const std::string err = element(item);
          if (!err.empty()) return err;
        }
        return "";
      },
      "each in " + element.get_description());
}

CLI::Validator shard_spec() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        long long i = -1, n = -1;
        char tail = 0;
        if (std::sscanf(s.c_str(), "%lld/%lld%c", &i, &n, &tail) != 2 || n < 1 || i < 0 || i >= n ||
            n > 1000000)
          return "'" + s + "' is not i/N with 0 <= i < N (e.g. 0/4)";
        return "";
      },
      "i/N");
}

namespace {
std::string g_compute_fallback;  // the warning init_compute holds back
}

Compute init_compute(const std::string& compute) {
  const Compute want = parse_compute(compute), got = set_compute(want);
  if (got != want)
    g_compute_fallback =
        "--compute " + std::string(compute_name(want)) + ": " + bf16_unavailable_reason() + "; running the exact path";
  return got;
}

void report_compute_fallback() {
  if (g_compute_fallback.empty()) return;
  log_warning(g_compute_fallback);
  g_compute_fallback.clear();
}

}  // namespace mmn::cli
