// Atomic output: data goes to "<path>.tmp-<pid>" and is renamed over <path> only
// once complete, so an interrupted run never leaves a half-written file.
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace mmn {

// Writes bytes to path atomically (creating parent directories). Throws mmn::Error.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Opens a temp file beside `path`; the callback streams into it; on success the
// file is flushed, fsync'ed and renamed to `path`. On exception the temp is removed.
void write_stream_atomic(const std::string& path, const std::function<void(std::FILE*)>& fill);
// Asks the kernel to drop a file's clean pages from the page cache
// (posix_fadvise DONTNEED); a hint, so failures are ignored.
void drop_from_page_cache(const std::string& path);

// Reads a whole file. Throws mmn::Error naming the file when it cannot.
std::string read_file(const std::string& path);

}  // namespace mmn
