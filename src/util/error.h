// Error type used across mmneuron: every user-facing failure is one line,
// naming the file (or argument) and the problem. The CLI prints it as
// "error: <what>" and exits non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace mmn {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
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

}  // namespace mmn
