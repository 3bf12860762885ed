#include "io/json_file.h"

#include <climits>
#include <cmath>
#include <fstream>

#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

void check_json_depth(std::string_view text, const std::string& what) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) fail(what, ": JSON nested deeper than ", kMaxJsonDepth, " levels");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

nlohmann::json parse_json(std::string_view text, const std::string& what) {
  check_json_depth(text, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(what, ": not valid JSON (byte ", e.byte, ")");
  } catch (const nlohmann::json::exception&) {
    // out_of_range.406: a number like 1e999 that no double holds.
    fail(what, ": not valid JSON (a number is out of range)");
  }
}

std::optional<int64_t> json_int(const nlohmann::json& v, int64_t lo, int64_t hi) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (hi < 0 || u > static_cast<uint64_t>(hi)) return std::nullopt;
    const int64_t x = static_cast<int64_t>(u);
    return x >= lo ? std::optional<int64_t>(x) : std::nullopt;
  }
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    return x >= lo && x <= hi ? std::optional<int64_t>(x) : std::nullopt;
  }
  if (v.is_number_float()) {
    // Compare as doubles before converting: casting 1e300 to int64 is UB.
    const double d = v.get<double>();
    if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d)) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::string describe_json(const nlohmann::json& v) {
  if (v.is_number() || v.is_boolean() || v.is_null()) return v.dump();
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return v.type_name();
}

std::optional<nlohmann::json> read_json_object_if_exists(const std::string& path) {
  if (!std::ifstream(path).good()) return std::nullopt;
  const std::string text = read_file(path);
  check_json_depth(text, path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": malformed JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(path, ": expected a JSON object");
  return j;
}

JsonFile JsonFile::load(const std::string& path) {
  nlohmann::json j = parse_json(read_file(path), path);
  if (!j.is_object()) fail(path, ": expected a JSON object at top level");
  return JsonFile(path, std::move(j));
}

void JsonFile::fail_key(const std::string& key, const std::string& problem) const {
  fail(path_, ": key ", prefix_, key, " ", problem);
}

const nlohmann::json& JsonFile::at(const std::string& key) const {
  if (!has(key)) fail(path_, ": missing key ", prefix_, key);
  return root_[key];
}

JsonFile JsonFile::sub(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_object()) fail_key(key, "is not an object");
  return JsonFile(path_, v, prefix_ + key + ".");
}

int64_t JsonFile::get_int(const std::string& key) const {
  const auto& v = at(key);
  if (auto x = json_int(v, INT32_MIN, INT32_MAX)) return *x;
  const bool whole = v.is_number_integer() ||
                     (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()));
  if (whole) fail_key(key, "is " + describe_json(v) + ", out of range (a 32-bit integer is expected)");
  fail_key(key, "is not an integer");
}

double JsonFile::get_double(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_number()) fail_key(key, "is not a number");
  return v.get<double>();
}

std::string JsonFile::get_string(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_string()) fail_key(key, "is not a string");
  return v.get<std::string>();
}

bool JsonFile::get_bool(const std::string& key) const {
  const auto& v = at(key);
  if (!v.is_boolean()) fail_key(key, "is not a boolean");
  return v.get<bool>();
}

}  // namespace mmn
