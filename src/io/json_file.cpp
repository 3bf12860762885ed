#include "io/json_file.h"

#include <fstream>

#include "io/atomic_file.h"
#include "util/error.h"

namespace mmn {

std::optional<nlohmann::json> read_json_object_if_exists(const std::string& path) {
  if (!std::ifstream(path).good()) return std::nullopt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": malformed JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(path, ": expected a JSON object");
  return j;
}

JsonFile JsonFile::load(const std::string& path) {
  std::string text = read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, ": not valid JSON (byte ", e.byte, ")");
  }
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
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
    return static_cast<int64_t>(v.get<double>());
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
