// Typed access to a JSON config file with errors that name the file and the
// key path ("config.json: missing key text_config.hidden_size").
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace mmn {

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
