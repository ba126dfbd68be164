// 8-bit RGB PNG images (libpng's simplified API), for the maze renderer (`rl2-cuda render`).
// Files are written atomically with write_file_atomic (temp file, fsync, rename).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rl2 {

// An RGB image: rgb [height, width, 3], rows from the top.
struct ImageRgb {
  int32_t width = 0;
  int32_t height = 0;
  std::vector<uint8_t> rgb;
};

// The PNG file's bytes. Throws rl2::Error when libpng fails.
std::string encode_png(const ImageRgb& image);
// encode_png + write_file_atomic. Throws rl2::Error.
void write_png(const std::string& path, const ImageRgb& image);

}  // namespace rl2
