// Error types used across mmneuron: every user-facing failure is one line,
// naming the file (or argument) and the problem. The CLI prints it as
// "error: <what>" and exits non-zero (the status by type: cli/exit_codes.h).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mmn {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A bad option value or combination of options, found after parsing (exit
// status 2, like a command line the parser refuses).
struct UsageError : Error {
  using Error::Error;
};

// The command ran but had nothing to work on or produced nothing: every
// image unreadable, no noun to rank, no shape named (exit status 3).
struct NothingDone : Error {
  using Error::Error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Throws mmn::Error with the concatenation of the arguments.
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Error(os.str());
}

// The same, as a UsageError.
template <class... Args>
[[noreturn]] void fail_usage(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw UsageError(os.str());
}

// The same, as a NothingDone.
template <class... Args>
[[noreturn]] void fail_nothing_done(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw NothingDone(os.str());
}

}  // namespace mmn
