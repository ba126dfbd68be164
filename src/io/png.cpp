// PNG encoding through libpng's simplified write API (png_image_write_to_memory, libpng >= 1.6.24):
// no setjmp/longjmp crosses our frames. The bytes then go through the same atomic writer as checkpoints.
#include "rl2/io/png.hpp"

#include <png.h>

#include "rl2/core/check.hpp"
#include "rl2/io/safetensors.hpp"

namespace rl2 {

std::string encode_png(const ImageRgb& image) {
  RL2_CHECK(image.width > 0 && image.height > 0 &&
                image.rgb.size() == static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3,
            "image buffer does not match its size");
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  png_alloc_size_t bytes = 0;  // first call: the size only
  RL2_CHECK(png_image_write_to_memory(&png, nullptr, &bytes, 0, image.rgb.data(), 0, nullptr),
            std::string("libpng: ") + png.message);
  std::string out(bytes, '\0');
  RL2_CHECK(png_image_write_to_memory(&png, out.data(), &bytes, 0, image.rgb.data(), 0, nullptr),
            std::string("libpng: ") + png.message);
  out.resize(bytes);
  return out;
}

void write_png(const std::string& path, const ImageRgb& image) { write_file_atomic(path, encode_png(image)); }

}  // namespace rl2
