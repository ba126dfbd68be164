// `rl2-cuda render`: what a maze trial looks like, as PNG files a person can open (DESIGN.md section 6):
// the first-person frames of a seeded random-action trajectory (the [3, 30, 40] observation, x8 nearest)
// and a top view of the layout with the target (red), the start (green), the agent's path (blue) and
// its last heading (drawn by maze_view.hpp). The trial is trial 0 of the seed's training stream; the Maze
// RL2_HD functions run here directly on the CPU, the same code both backends run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands/common.hpp"
#include "commands/maze_view.hpp"
#include "rl2/core/check.hpp"
#include "rl2/env/maze.hpp"
#include "rl2/io/png.hpp"

namespace rl2 {

namespace fs = std::filesystem;

int run_render(const GlobalFlags& g, const RenderFlags& f) {
  RL2_REQUIRE(f.env.env == "maze", "render draws the maze only (got --env " + f.env.env + ")");
  const EnvConfig cfg = f.env.to_config();
  const MazeParams& mp = cfg.maze;
  RL2_REQUIRE(f.policy == "random", "unknown --policy '" + f.policy + "' for render (expected random)");
  if (g.device == "cuda") resolve_device("cuda");  // renders on the CPU, but an explicit cuda request needs a GPU
  const int64_t max_frames = Maze::trial_length(mp) + 1;
  RL2_REQUIRE(f.frames >= 1 && f.frames <= max_frames, "--frames must be in [1, " + std::to_string(max_frames) +
                                                           "] (got " + std::to_string(f.frames) + ")");
  const fs::path out(f.out);
  RL2_REQUIRE(!out.stem().empty(), "--out needs a file name (got '" + f.out + "')");
  const fs::path dir = out.parent_path();
  RL2_REQUIRE(dir.empty() || fs::is_directory(dir), "--out directory '" + dir.string() + "' does not exist");
  auto path_for = [&](const std::string& suffix) { return (dir / (out.stem().string() + suffix)).string(); };

  constexpr uint64_t kTrial = 0;
  std::vector<float> task(static_cast<size_t>(Maze::task_size(mp)));
  std::vector<float> obs(static_cast<size_t>(Maze::obs_size(mp)));
  Maze::sample_task(mp, g.seed, kTrial, task.data());
  Maze::State st;
  Maze::reset(mp, task.data(), st);
  std::vector<PathPoint> path{{st.x, st.y, true}};
  std::vector<std::string> frames;
  double total = 0.0;
  int32_t episodes_done = 0;
  for (int64_t k = 0; k < f.frames; ++k) {
    Maze::observe(mp, task.data(), st, obs.data());
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "_fp_%03lld.png", static_cast<long long>(k));
    frames.push_back(path_for(suffix));
    write_png(frames.back(), first_person_image(obs));
    if (k + 1 == f.frames) break;
    const int32_t a = static_cast<int32_t>(
        uniform_int(philox_bits(g.seed, kTrial, static_cast<uint32_t>(k), Purpose::kAction, 0).v[0], 3));
    const StepOut o = Maze::step(mp, task.data(), st, a, g.seed, kTrial);
    total += o.reward;
    episodes_done += o.done;
    path.push_back({st.x, st.y, o.done != 0});
  }
  const std::string top = path_for("_top.png");
  write_png(top, top_view(mp, task.data(), path, st.heading));

  const uint64_t config = Maze::config_id(mp, g.seed, kTrial);
  if (g.json()) {
    nlohmann::json j = {{"env", cfg.name()}, {"size", mp.size},       {"seed", g.seed},
                        {"config", config},  {"policy", f.policy},    {"steps", f.frames - 1},
                        {"return", total},   {"episodes_done", episodes_done}, {"first_person", frames},
                        {"top", top}};
    std::cout << j.dump() << "\n";
  }
  g.human() << "render: " << cfg.describe() << ", seed " << g.seed << ", configuration " << config << ": "
            << frames.size() << " first-person frames " << frames.front()
            << (frames.size() > 1 ? " .. " + frames.back() : std::string()) << " (" << Maze::kWidth * kFrameScale << "x"
            << Maze::kHeight * kFrameScale << "), top view " << top << "; " << f.policy << " policy: return " << total
            << " over " << f.frames - 1 << " steps, " << episodes_done << " episodes ended\n";
  return 0;
}

}  // namespace rl2
