// Pictures of maze trials for people (DESIGN.md section 6), shared by `rl2-cuda render` and
// `rl2-cuda eval --video`: a first-person frame (the [3, 30, 40] observation, x8 nearest) and a top view
// of the layout with the target (red), the start (green), the agent's path (blue) and its last heading.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rl2/env/maze.hpp"
#include "rl2/io/png.hpp"

namespace rl2 {

constexpr int32_t kFrameScale = 8;   // first-person pixels per observation pixel
constexpr int32_t kCellPixels = 32;  // top-view pixels per maze cell

struct PathPoint {
  float x, y;
  bool new_episode;  // the pose was reset to the start: no line from the previous point
};

// obs: [3, H, W] in [-1, 1] -> an RGB image, each observation pixel a kFrameScale square.
ImageRgb first_person_image(const std::vector<float>& obs);
// Top view (y up) of the task's layout with the path and the last heading.
ImageRgb top_view(const MazeParams& p, const float* task, const std::vector<PathPoint>& path, int32_t heading);

// Replays n trials of p (ids first_trial + i) on the host with recorded actions [n, trial_length]
// (-1 once a trial finished) and writes, per trial, <dir>/trial<i>_fp_<step>.png (the first observation,
// then one per step, 4 digits) and <dir>/trial<i>_top.png. Returns the number of files written.
int64_t write_maze_videos(const std::string& dir, const MazeParams& p, uint64_t seed, uint64_t first_trial, int64_t n,
                          const std::vector<int32_t>& actions);

}  // namespace rl2
