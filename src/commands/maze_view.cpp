// Maze pictures (maze_view.hpp): first-person frames, the top view, and eval's replayed videos. The Maze
// RL2_HD functions run here directly on the CPU, the same code both backends run.
#include "commands/maze_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "rl2/core/check.hpp"

namespace rl2 {
namespace {

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kWallColour{70, 70, 70}, kFreeColour{235, 235, 235}, kTargetColour{220, 40, 40},
    kStartColour{40, 170, 60}, kPathColour{40, 90, 230}, kHeadingColour{10, 20, 90};

// Top view with y up: maze point (x, y) is pixel (x * kCellPixels, (G - y) * kCellPixels).
class TopView {
 public:
  explicit TopView(int32_t grid) : grid_(grid) {
    img_.width = img_.height = grid * kCellPixels;
    img_.rgb.resize(static_cast<size_t>(img_.width) * img_.height * 3);
  }
  void cell(int32_t cx, int32_t cy, Rgb c) {
    for (int32_t y = 0; y < kCellPixels; ++y)
      for (int32_t x = 0; x < kCellPixels; ++x) put(cx * kCellPixels + x, (grid_ - 1 - cy) * kCellPixels + y, c);
  }
  void disc(float mx, float my, float radius_px, Rgb c) {
    const float px = mx * kCellPixels, py = (static_cast<float>(grid_) - my) * kCellPixels;
    const int32_t r = static_cast<int32_t>(radius_px) + 1;
    for (int32_t dy = -r; dy <= r; ++dy)
      for (int32_t dx = -r; dx <= r; ++dx)
        if (static_cast<float>(dx * dx + dy * dy) <= radius_px * radius_px)
          put(static_cast<int32_t>(px) + dx, static_cast<int32_t>(py) + dy, c);
  }
  void line(float x0, float y0, float x1, float y1, Rgb c) {
    const int32_t n = static_cast<int32_t>(std::max(std::abs(x1 - x0), std::abs(y1 - y0)) * kCellPixels) + 1;
    for (int32_t k = 0; k <= n; ++k) {
      const float t = static_cast<float>(k) / static_cast<float>(n);
      disc(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, 1.0f, c);
    }
  }
  const ImageRgb& image() const { return img_; }

 private:
  void put(int32_t x, int32_t y, Rgb c) {
    if (x < 0 || y < 0 || x >= img_.width || y >= img_.height) return;
    uint8_t* p = &img_.rgb[(static_cast<size_t>(y) * img_.width + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  int32_t grid_;
  ImageRgb img_;
};

}  // namespace

// obs: [3, H, W] in [-1, 1] -> an RGB image, each observation pixel a kFrameScale square.
ImageRgb first_person_image(const std::vector<float>& obs) {
  constexpr int32_t w = Maze::kWidth, h = Maze::kHeight;
  ImageRgb img{w * kFrameScale, h * kFrameScale, {}};
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  for (int32_t y = 0; y < img.height; ++y)
    for (int32_t x = 0; x < img.width; ++x)
      for (int32_t c = 0; c < 3; ++c) {
        const float v = obs[(c * h + y / kFrameScale) * w + x / kFrameScale];
        img.rgb[(static_cast<size_t>(y) * img.width + x) * 3 + c] = static_cast<uint8_t>((v + 1.0f) * 127.5f + 0.5f);
      }
  return img;
}

ImageRgb top_view(const MazeParams& p, const float* task, const std::vector<PathPoint>& path, int32_t heading) {
  const int32_t g = Maze::grid(p);
  TopView view(g);
  for (int32_t y = 0; y < g; ++y)
    for (int32_t x = 0; x < g; ++x) {
      const int32_t c = Maze::cell_at(p, task, x, y);
      view.cell(x, y, c == Maze::kWall ? kWallColour : c == Maze::kTarget ? kTargetColour : kFreeColour);
    }
  const float* tail = task + g * g;
  view.disc(tail[0] + 0.5f, tail[1] + 0.5f, Maze::kRadius * kCellPixels, kStartColour);
  for (size_t k = 0; k < path.size(); ++k) {
    if (k > 0 && !path[k].new_episode) view.line(path[k - 1].x, path[k - 1].y, path[k].x, path[k].y, kPathColour);
    view.disc(path[k].x, path[k].y, 2.5f, kPathColour);
  }
  const PathPoint& last = path.back();
  view.line(last.x, last.y, last.x + 0.4f * Maze::heading_cos(heading), last.y + 0.4f * Maze::heading_sin(heading),
            kHeadingColour);
  return view.image();
}

int64_t write_maze_videos(const std::string& dir, const MazeParams& p, uint64_t seed, uint64_t first_trial, int64_t n,
                          const std::vector<int32_t>& actions) {
  const int64_t T = Maze::trial_length(p);
  RL2_CHECK(static_cast<int64_t>(actions.size()) == n * T, "write_maze_videos: actions do not match the trials");
  std::vector<float> task(static_cast<size_t>(Maze::task_size(p))), obs(static_cast<size_t>(Maze::obs_size(p)));
  int64_t files = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t trial = first_trial + static_cast<uint64_t>(i);
    const std::string stem = (std::filesystem::path(dir) / ("trial" + std::to_string(i))).string();
    Maze::sample_task(p, seed, trial, task.data());
    Maze::State st;
    Maze::reset(p, task.data(), st);
    std::vector<PathPoint> path{{st.x, st.y, true}};
    for (int64_t t = 0;; ++t) {
      Maze::observe(p, task.data(), st, obs.data());
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, "_fp_%04lld.png", static_cast<long long>(t));
      write_png(stem + suffix, first_person_image(obs));
      ++files;
      const int32_t a = t < T ? actions[i * T + t] : -1;
      if (a < 0) break;
      const StepOut o = Maze::step(p, task.data(), st, a, seed, trial);
      path.push_back({st.x, st.y, o.done != 0});
    }
    write_png(stem + "_top.png", top_view(p, task.data(), path, st.heading));
    ++files;
  }
  return files;
}

}  // namespace rl2
