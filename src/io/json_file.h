// Typed access to a JSON config file with errors that name the file and the
// key path ("config.json: missing key text_config.hidden_size").
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace mmn {

// Deepest nesting of arrays/objects accepted in any JSON input. nlohmann's
// copy, comparison and dump recurse once per level, so a hostile file nested
// a million deep would overflow the stack long after parsing succeeded.
constexpr int kMaxJsonDepth = 256;

// Throws mmn::Error "WHAT: JSON nested deeper than 256 levels" when `text`
// nests arrays/objects deeper than kMaxJsonDepth (a linear scan; strings are
// skipped). Call before nlohmann::json::parse on untrusted text.
void check_json_depth(std::string_view text, const std::string& what);

// check_json_depth, then parse; a syntax error becomes mmn::Error
// "WHAT: not valid JSON (byte N)".
nlohmann::json parse_json(std::string_view text, const std::string& what);

// The integer a JSON value holds when it is one in [lo, hi]: an integer, or a
// float with an integral value (4096.0, as some exporters write sizes).
// nullopt for anything else, so callers never cast an out-of-range number.
std::optional<int64_t> json_int(const nlohmann::json& v, int64_t lo, int64_t hi);

// A short description of a value for one-line messages: numbers and booleans
// as written, anything else by its type ("a string", "an array", …), so file
// contents never spill into an error.
std::string describe_json(const nlohmann::json& v);

// Parses a file holding a JSON object; nullopt when the file does not exist.
// Malformed JSON or a non-object → mmn::Error naming the file.
std::optional<nlohmann::json> read_json_object_if_exists(const std::string& path);

class JsonFile {
 public:
  // Parses the file; throws mmn::Error "PATH: not valid JSON (…)" or "PATH: no such file".
  static JsonFile load(const std::string& path);
  JsonFile(std::string path, nlohmann::json root, std::string prefix = "")
      : path_(std::move(path)), root_(std::move(root)), prefix_(std::move(prefix)) {}

  bool has(const std::string& key) const { return root_.is_object() && root_.contains(key) && !root_[key].is_null(); }
  JsonFile sub(const std::string& key) const;  // nested object (required)

  // Integers are config sizes and token ids: get_int accepts whole numbers in
  // the int32 range only (callers narrow to int), and refuses anything else as
  // "PATH: key K is not an integer" / "… is out of range".
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t def) const { return has(key) ? get_int(key) : def; }
  double get_double(const std::string& key, double def) const { return has(key) ? get_double(key) : def; }
  std::string get_string(const std::string& key, const std::string& def) const {
    return has(key) ? get_string(key) : def;
  }
  bool get_bool(const std::string& key, bool def) const { return has(key) ? get_bool(key) : def; }

  const nlohmann::json& json() const { return root_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void fail_key(const std::string& key, const std::string& problem) const;

 private:
  const nlohmann::json& at(const std::string& key) const;
  std::string path_;
  nlohmann::json root_;
  std::string prefix_;
};

}  // namespace mmn
