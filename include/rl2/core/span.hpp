// A pointer and a length, usable in device code (std::span is not); bounds are checked by callers.
#pragma once

#include <cstddef>

#include "rl2/core/hd.hpp"

namespace rl2 {

template <class T>
struct Span {
  T* ptr = nullptr;
  size_t len = 0;
  RL2_HD_INLINE T& operator[](size_t i) const { return ptr[i]; }
  RL2_HD_INLINE size_t size() const { return len; }
  RL2_HD_INLINE T* data() const { return ptr; }
};

}  // namespace rl2
