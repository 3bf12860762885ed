// Image lists for dataset runs: a folder of images, an SBU-style JSON file
// ({"image_urls": […], "captions": […]}) resolved against a local images
// folder by file name, or JSONL ({"image": …, "caption": …} per line).
#pragma once
#include <string>
#include <vector>

namespace mmn {

struct DatasetItem {
  std::string id;          // unique, file-system safe: the image file's stem (+ "-N" when repeated)
  std::string image_path;  // local file (may not exist: reported and skipped when run)
  std::string caption;     // reference caption from the dataset, "" when none
};

// Every .png/.jpg/.jpeg in dir (not recursive), sorted by name.
std::vector<DatasetItem> list_image_dir(const std::string& dir);

// Parses a dataset file. Relative image paths and URLs resolve to
// images_root/<file name> (images_root defaults to the dataset file's folder).
// Malformed files → mmn::Error naming the file and line/entry.
std::vector<DatasetItem> load_dataset(const std::string& file, const std::string& images_root);

// Items [start, end) of the list, then those of shard i of n (i-th of every n).
std::vector<DatasetItem> select_items(const std::vector<DatasetItem>& all, int64_t start, int64_t end, int shard_i,
                                      int shard_n);

// Ids from the items' file names: characters outside [A-Za-z0-9._-] become
// '_', an empty name or "." or ".." becomes "image" (an id names a folder of
// the run), and repeats get "-1", "-2", ….
void assign_ids(std::vector<DatasetItem>& items);

}  // namespace mmn
