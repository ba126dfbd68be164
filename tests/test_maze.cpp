// The first-person maze (DESIGN.md section 6, docs/maze.md): Prim layouts are perfect mazes, the
// configuration pool and evaluation configurations, the dynamics (turns, collisions, target, episode
// restarts, finished trials) on hand-built corridors, the horizon bound against a planned walk, and
// renderer pixels at known distances.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <set>
#include <vector>

#include "env_test_util.hpp"
#include "rl2/core/check.hpp"
#include "rl2/env/batch.hpp"
#include "rl2/env/maze.hpp"

namespace rl2 {
namespace {

MazeParams params(int32_t size, int32_t mazes = 1000, int32_t layout = Maze::kPrim) {
  MazeParams p;
  p.size = size;
  p.mazes = mazes;
  p.layout = layout;
  return p;
}

std::vector<float> config(const MazeParams& p, uint64_t seed, uint64_t id) {
  std::vector<float> task(static_cast<size_t>(Maze::task_size(p)));
  Maze::make_config(p, seed, id, task.data());
  return task;
}

// A 7x7 task (size 5) that is wall but for `free` cells; optional target; start pose as given.
std::vector<float> corridor(const std::vector<std::pair<int, int>>& free, std::pair<int, int> target, int start_heading) {
  const MazeParams p = params(5);
  const int g = Maze::grid(p);
  std::vector<float> task(static_cast<size_t>(Maze::task_size(p)), static_cast<float>(Maze::kWall));
  for (auto [x, y] : free) task[y * g + x] = Maze::kFree;
  if (target.first >= 0) task[target.second * g + target.first] = Maze::kTarget;
  float* tail = task.data() + g * g;
  tail[0] = static_cast<float>(free[0].first);
  tail[1] = static_cast<float>(free[0].second);
  tail[2] = static_cast<float>(start_heading);
  tail[3] = static_cast<float>(target.first);
  tail[4] = static_cast<float>(target.second);
  return task;
}

Maze::State start(const MazeParams& p, const std::vector<float>& task) {
  Maze::State st;
  Maze::reset(p, task.data(), st);
  return st;
}

TEST(MazeLayout, PrimGivesPerfectMazesWithOuterWalls) {
  for (int32_t size : {3, 5, 7, 9}) {
    const MazeParams p = params(size);
    const int g = Maze::grid(p), s = Maze::nodes_per_side(p), nodes = s * s;
    for (uint64_t id = 0; id < 300; ++id) {
      const auto task = config(p, 7, id);
      int passages = 0, targets = 0;
      for (int y = 0; y < g; ++y)
        for (int x = 0; x < g; ++x) {
          const int c = Maze::cell_at(p, task.data(), x, y);
          const bool border = x == 0 || y == 0 || x == g - 1 || y == g - 1;
          if (border || (x % 2 == 0 && y % 2 == 0)) { ASSERT_EQ(c, Maze::kWall) << "cell " << x << "," << y; }
          if (x % 2 == 1 && y % 2 == 1) { ASSERT_NE(c, Maze::kWall) << "node " << x << "," << y; }
          if ((x + y) % 2 == 1 && c == Maze::kFree) ++passages;
          if ((x + y) % 2 == 1) { ASSERT_NE(c, Maze::kTarget) << "the target is a node"; }
          targets += c == Maze::kTarget;
        }
      ASSERT_EQ(passages, nodes - 1) << "a spanning tree of the nodes";
      ASSERT_EQ(targets, 1);
      // Every node reachable from the start through free cells: with nodes - 1 passages, a tree.
      const float* tail = task.data() + g * g;
      std::vector<char> seen(static_cast<size_t>(g * g), 0);
      std::deque<int> queue{static_cast<int>(tail[1]) * g + static_cast<int>(tail[0])};
      seen[queue.front()] = 1;
      int reached_nodes = 0;
      while (!queue.empty()) {
        const int c = queue.front();
        queue.pop_front();
        if ((c % g) % 2 == 1 && (c / g) % 2 == 1) ++reached_nodes;
        for (int n : {c + 1, c - 1, c + g, c - g})
          if (!seen[n] && task[n] != Maze::kWall) seen[n] = 1, queue.push_back(n);
      }
      ASSERT_EQ(reached_nodes, nodes);
      ASSERT_EQ(Maze::cell_at(p, task.data(), static_cast<int>(tail[3]), static_cast<int>(tail[4])), Maze::kTarget);
      ASSERT_FALSE(tail[0] == tail[3] && tail[1] == tail[4]) << "target != start";
      ASSERT_EQ(static_cast<int>(tail[2]) % Maze::kTurn, 0);
    }
  }
}

// The ladder's corridor: the nodes' bottom row carved end to end and nothing else, the start at one end
// and the target at the other, both ends and all 12 start headings drawn.
TEST(MazeLayout, CorridorIsOneStraightRowFromStartToTarget) {
  for (int32_t size : {3, 5, 9}) {
    const MazeParams p = params(size, 1000, Maze::kCorridor);
    const int g = Maze::grid(p);
    std::set<int> headings, starts;
    for (uint64_t id = 0; id < 200; ++id) {
      const auto task = config(p, 7, id);
      const float* tail = task.data() + g * g;
      for (int y = 0; y < g; ++y)
        for (int x = 0; x < g; ++x) {
          const int c = Maze::cell_at(p, task.data(), x, y);
          const bool inside = y == 1 && x >= 1 && x <= g - 2;
          ASSERT_EQ(c != Maze::kWall, inside) << "cell " << x << "," << y;
        }
      const int sx = static_cast<int>(tail[0]), tx = static_cast<int>(tail[3]);
      ASSERT_EQ(tail[1], 1.0f);
      ASSERT_EQ(tail[4], 1.0f);
      ASSERT_EQ(sx + tx, g - 1) << "start and target at the two ends";
      ASSERT_TRUE(sx == 1 || sx == g - 2);
      ASSERT_EQ(Maze::cell_at(p, task.data(), tx, 1), Maze::kTarget);
      ASSERT_EQ(static_cast<int>(tail[2]) % Maze::kTurn, 0);
      headings.insert(static_cast<int>(tail[2]));
      starts.insert(sx);
    }
    EXPECT_EQ(headings.size(), 12u);
    EXPECT_EQ(starts.size(), 2u);
  }
}

TEST(MazeLayout, DeterministicPerSeedAndConfiguration) {
  const MazeParams p = params(5);
  EXPECT_EQ(config(p, 3, 17), config(p, 3, 17));
  EXPECT_NE(config(p, 3, 17), config(p, 4, 17));
  std::set<std::vector<float>> distinct;
  for (uint64_t id = 0; id < 50; ++id) distinct.insert(config(p, 3, id));
  EXPECT_EQ(distinct.size(), 50u);
}

TEST(MazeLayout, TrialsDrawFromAPoolOfMConfigurations) {
  EnvConfig cfg;
  cfg.kind = EnvKind::kMaze;
  cfg.maze = params(5, 4);
  auto batch = make_cpu_env_batch(cfg, 200);
  batch->reset(9, 0);
  const EnvSnapshot s = batch->snapshot();
  const int64_t ts = cfg.task_size();
  std::set<std::vector<float>> distinct;
  for (int64_t i = 0; i < batch->trials(); ++i) {
    std::vector<float> task(s.tasks.begin() + i * ts, s.tasks.begin() + (i + 1) * ts);
    ASSERT_EQ(task, config(cfg.maze, 9, Maze::config_id(cfg.maze, 9, static_cast<uint64_t>(i))));
    distinct.insert(task);
  }
  EXPECT_EQ(distinct.size(), 4u);
  // mazes = 0 (evaluation): the configuration of a trial is its own id.
  const MazeParams eval = params(5, 0);
  std::vector<float> task(static_cast<size_t>(Maze::task_size(eval)));
  Maze::sample_task(eval, 9, kEvalStream + 5, task.data());
  EXPECT_EQ(task, config(eval, 9, kEvalStream + 5));
}

TEST(MazeDynamics, TwelveTurnsMakeAFullCircle) {
  const MazeParams p = params(5);
  const auto task = corridor({{1, 1}, {2, 1}, {3, 1}}, {-1, -1}, 8);
  Maze::State st = start(p, task);
  EXPECT_EQ(Maze::heading_cos(0), 1.0f);
  EXPECT_EQ(Maze::heading_sin(12), 1.0f);
  EXPECT_EQ(Maze::heading_cos(24), -1.0f);
  EXPECT_EQ(Maze::heading_sin(36), -1.0f);
  for (int action : {Maze::kTurnLeft, Maze::kTurnRight}) {
    for (int k = 0; k < 12; ++k) {
      const StepOut out = Maze::step(p, task.data(), st, action, 0, 0);
      EXPECT_EQ(out.reward, -Maze::kStepCost);
      EXPECT_EQ(out.done, 0);
      if (k == 0) { EXPECT_EQ(st.heading, action == Maze::kTurnLeft ? 12 : 4); }
    }
    EXPECT_EQ(st.heading, 8);
    EXPECT_EQ(st.x, 1.5f);
    EXPECT_EQ(st.y, 1.5f);
  }
}

TEST(MazeDynamics, ForwardIntoAWallIsRejected) {
  const MazeParams p = params(5);
  const auto task = corridor({{1, 1}, {2, 1}, {3, 1}}, {-1, -1}, 24);  // facing -x, the outer wall at x = 0
  Maze::State st = start(p, task);
  StepOut out = Maze::step(p, task.data(), st, Maze::kForward, 0, 0);  // disc [1.05, 1.45]: free
  EXPECT_EQ(out.reward, -Maze::kStepCost);
  EXPECT_EQ(st.x, 1.25f);
  out = Maze::step(p, task.data(), st, Maze::kForward, 0, 0);  // disc [0.8, 1.2] would overlap the wall
  EXPECT_EQ(out.reward, -Maze::kStepCost - Maze::kBumpCost);
  EXPECT_EQ(out.done, 0);
  EXPECT_EQ(st.x, 1.25f);
  EXPECT_EQ(st.y, 1.5f);
}

TEST(MazeDynamics, TargetEndsTheEpisodeAndEpisodesRestartAtTheStart) {
  MazeParams p = params(5);
  p.episodes = 2;
  const auto task = corridor({{1, 1}, {2, 1}, {3, 1}}, {3, 1}, 0);  // target node two cells ahead
  Maze::State st = start(p, task);
  for (int episode = 0; episode < 2; ++episode) {
    // 1.75 2.0 2.25 2.5 2.75: free; at 3.0 the disc [2.8, 3.2] touches the target cell.
    for (int k = 0; k < 5; ++k) {
      const StepOut out = Maze::step(p, task.data(), st, Maze::kForward, 0, 0);
      ASSERT_EQ(out.reward, -Maze::kStepCost);
      ASSERT_EQ(out.done, 0);
    }
    const StepOut out = Maze::step(p, task.data(), st, Maze::kForward, 0, 0);
    EXPECT_EQ(out.reward, Maze::kGoalReward - Maze::kStepCost);
    EXPECT_FLOAT_EQ(out.reward, 0.96f);
    EXPECT_EQ(out.done, 1);
    EXPECT_EQ(st.episode, episode + 1);
    EXPECT_EQ(st.t, 0);
    EXPECT_EQ(st.x, 1.5f);
    EXPECT_EQ(st.y, 1.5f);
    EXPECT_EQ(st.heading, 0);
  }
  EXPECT_TRUE(Maze::finished(p, st));
  // A finished trial: reward exactly 0, done 0, nothing changes, whatever the action.
  for (int action = 0; action < 3; ++action) {
    Maze::State before = st;
    const StepOut out = Maze::step(p, task.data(), st, action, 0, 0);
    EXPECT_EQ(out.reward, 0.0f);
    EXPECT_EQ(out.done, 0);
    EXPECT_EQ(std::memcmp(&before, &st, sizeof st), 0);
  }
}

TEST(MazeDynamics, HorizonEndsTheEpisodeAtTheStartPose) {
  MazeParams p = params(5);
  p.horizon = 3;
  p.episodes = 2;
  const auto task = corridor({{1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}}, {-1, -1}, 0);
  Maze::State st = start(p, task);
  for (int k = 0; k < 3; ++k) {
    const StepOut out = Maze::step(p, task.data(), st, k == 0 ? Maze::kTurnLeft : Maze::kForward, 0, 0);
    EXPECT_EQ(out.done, k == 2 ? 1 : 0);
  }
  EXPECT_EQ(st.x, 1.5f);
  EXPECT_EQ(st.y, 1.5f);
  EXPECT_EQ(st.heading, 0);
  EXPECT_EQ(st.episode, 1);
}

// An agent that walks the shortest cell path along the axes (turn to face the next cell, 4 steps per
// cell) reaches the target of every sampled maze within max_shortest_path steps: the horizon bound
// that validate() enforces is enough, and corridors never make it bump.
TEST(MazeDynamics, PlannedWalkReachesEveryTargetWithinTheHorizonBound) {
  for (const MazeParams p : {params(3), params(5), params(7), params(9), params(3, 1000, Maze::kCorridor),
                             params(5, 1000, Maze::kCorridor), params(9, 1000, Maze::kCorridor)}) {
    const int g = Maze::grid(p);
    int worst = 0;
    for (uint64_t id = 0; id < 300; ++id) {
      const auto task = config(p, 21, id);
      const float* tail = task.data() + g * g;
      const int from = static_cast<int>(tail[1]) * g + static_cast<int>(tail[0]);
      const int to = static_cast<int>(tail[4]) * g + static_cast<int>(tail[3]);
      std::vector<int> prev(static_cast<size_t>(g * g), -1);
      std::deque<int> queue{from};
      prev[from] = from;
      while (!queue.empty()) {
        const int c = queue.front();
        queue.pop_front();
        for (int n : {c + 1, c - 1, c + g, c - g})
          if (prev[n] < 0 && task[n] != Maze::kWall) prev[n] = c, queue.push_back(n);
      }
      std::vector<int> cells{to};
      while (cells.back() != from) cells.push_back(prev[cells.back()]);
      Maze::State st = start(p, task);
      int steps = 0;
      bool reached = false;
      for (size_t k = cells.size() - 1; k-- > 0 && !reached;) {
        const int d = cells[k] - cells[k + 1];
        const int want = d == 1 ? 0 : d == g ? 12 : d == -1 ? 24 : 36;
        const int left = ((want - st.heading) % 48 + 48) % 48;
        while (st.heading != want) {
          Maze::step(p, task.data(), st, left <= 24 ? Maze::kTurnLeft : Maze::kTurnRight, 0, 0);
          ++steps;
        }
        for (int m = 0; m < 4 && !reached; ++m) {
          const StepOut out = Maze::step(p, task.data(), st, Maze::kForward, 0, 0);
          ++steps;
          ASSERT_NE(out.reward, -Maze::kStepCost - Maze::kBumpCost) << "bumped in maze " << id;
          reached = out.done == 1;
        }
      }
      ASSERT_TRUE(reached) << "maze " << id;
      ASSERT_LE(steps, Maze::max_shortest_path(p)) << "maze " << id;
      worst = std::max(worst, steps);
    }
    EXPECT_GT(worst, Maze::max_shortest_path(p) / 3) << "the bound is not absurdly loose";
  }
}

std::vector<float> render(const std::vector<float>& task, const Maze::State& st) {
  const MazeParams p = params(5);
  std::vector<float> obs(static_cast<size_t>(Maze::obs_size(p)));
  Maze::observe(p, task.data(), st, obs.data());
  return obs;
}
float pixel(const std::vector<float>& obs, int channel, int row, int col) {
  return obs[(channel * Maze::kHeight + row) * Maze::kWidth + col];
}
bool has_colour(const std::vector<float>& obs, int row, int col, int colour) {
  for (int c = 0; c < 3; ++c)
    if (pixel(obs, c, row, col) != Maze::palette(colour, c)) return false;
  return true;
}

// The centre column (camera x = 0) looks straight ahead: a wall at perpendicular distance d fills
// min(H, floor(H / d)) rows, centred, with the ceiling above and the floor below.
TEST(MazeRender, WallColumnHeightAndColourAtKnownDistances) {
  const int centre = Maze::kWidth / 2;
  struct Case {
    int free_to;   // corridor cells x = 1 .. free_to at y = 1; the wall at free_to + 1
    float x;       // agent x, facing +x
    int expected;  // wall rows
  };
  for (const Case c : {Case{3, 1.5f, 12}, Case{5, 1.5f, 6}, Case{1, 1.5f, 30}, Case{5, 2.5f, 8}}) {
    std::vector<std::pair<int, int>> free;
    for (int x = 1; x <= c.free_to; ++x) free.push_back({x, 1});
    const auto task = corridor(free, {-1, -1}, 0);
    Maze::State st = start(params(5), task);
    st.x = c.x;
    const float dist = static_cast<float>(c.free_to + 1) - c.x;
    ASSERT_EQ(c.expected, std::min(Maze::kHeight, static_cast<int>(Maze::kHeight / dist)));
    const auto obs = render(task, st);
    const int top = (Maze::kHeight - c.expected) / 2;
    for (int r = 0; r < Maze::kHeight; ++r) {
      const int want = r < top ? Maze::kCeiling : r < top + c.expected ? 0 /*face -x*/ : Maze::kFloor;
      EXPECT_TRUE(has_colour(obs, r, centre, want)) << "row " << r << " distance " << dist;
    }
  }
}

TEST(MazeRender, FacesShowTheDirectionAndTheTargetIsRed) {
  const int centre = Maze::kWidth / 2, mid = Maze::kHeight / 2;
  std::vector<std::pair<int, int>> row, column;
  for (int k = 1; k <= 5; ++k) row.push_back({k, 1}), column.push_back({1, k});
  auto task = corridor(row, {-1, -1}, 24);  // facing -x: the wall's east face
  Maze::State st = start(params(5), task);
  st.x = 4.5f;
  EXPECT_TRUE(has_colour(render(task, st), mid, centre, 1));
  task = corridor(column, {-1, -1}, 12);  // facing +y: the south face of the far wall
  EXPECT_TRUE(has_colour(render(task, start(params(5), task)), mid, centre, 2));
  task = corridor(column, {-1, -1}, 36);  // facing -y from y = 4.5: the north face
  st = start(params(5), task);
  st.y = 4.5f;
  EXPECT_TRUE(has_colour(render(task, st), mid, centre, 3));
  // The four wall faces, the target, ceiling and floor are all distinct colours.
  std::set<std::vector<float>> colours;
  for (int k = 0; k < 8; ++k) colours.insert({Maze::palette(k, 0), Maze::palette(k, 1), Maze::palette(k, 2)});
  EXPECT_EQ(colours.size(), 8u);

  task = corridor({{1, 1}, {2, 1}, {3, 1}}, {3, 1}, 0);
  const auto obs = render(task, start(params(5), task));
  EXPECT_GT(pixel(obs, 0, mid, centre), 0.0f);
  EXPECT_EQ(pixel(obs, 1, mid, centre), -1.0f);
  EXPECT_EQ(pixel(obs, 2, mid, centre), -1.0f);
  EXPECT_TRUE(has_colour(obs, 0, centre, Maze::kCeiling));
  EXPECT_TRUE(has_colour(obs, Maze::kHeight - 1, centre, Maze::kFloor));
}

// Random walks through sampled mazes on the batch: every value in [-1, 1], the same numbers twice.
TEST(MazeRender, BatchObservationsStayInRangeAndRepeat) {
  EnvConfig cfg;
  cfg.kind = EnvKind::kMaze;
  cfg.maze = params(9, 50);
  cfg.maze.horizon = 300;
  cfg.validate();
  EXPECT_EQ(cfg.describe(), "maze 9x9 n=2 H=300 M=50");
  EXPECT_EQ(cfg.obs_size(), 3 * 30 * 40);
  auto a = make_cpu_env_batch(cfg, 33), b = make_cpu_env_batch(cfg, 33);
  a->reset(5, 0);
  b->reset(5, 0);
  for (int t = 0; t < 200; ++t) {
    const auto actions = test::pattern_actions(33, t, 3);
    a->step(actions.data());
    b->step(actions.data());
    const EnvSnapshot sa = a->snapshot(), sb = b->snapshot();
    ASSERT_EQ(sa.obs, sb.obs);
    ASSERT_EQ(sa.rewards, sb.rewards);
    for (float v : sa.obs) ASSERT_TRUE(v >= -1.0f && v <= 1.0f);
  }
}

// EnvBatch::observe() (the bench's render-only pass) rewrites each trial's view from its current pose: the
// same bits as the step left, and the same as rendering the snapshot's task and state one by one.
TEST(MazeRender, ObserveRendersTheCurrentPosesAgain) {
  EnvConfig cfg;
  cfg.kind = EnvKind::kMaze;
  cfg.maze = params(5, 20);
  cfg.validate();
  auto b = make_cpu_env_batch(cfg, 9);
  b->reset(11, 0);
  for (int t = 0; t < 25; ++t) b->step(test::pattern_actions(9, t, 3).data());
  const EnvSnapshot before = b->snapshot();
  b->observe();
  const EnvSnapshot after = b->snapshot();
  ASSERT_EQ(after.obs, before.obs);
  ASSERT_EQ(after.states, before.states);
  const int64_t ts = cfg.task_size(), os = cfg.obs_size();
  const size_t words = sizeof(Maze::State) / sizeof(int32_t);
  for (int64_t i = 0; i < 9; ++i) {
    Maze::State st;
    std::memcpy(&st, &after.states[static_cast<size_t>(i) * words], sizeof st);
    std::vector<float> one(static_cast<size_t>(os));
    Maze::observe(cfg.maze, &after.tasks[static_cast<size_t>(i * ts)], st, one.data());
    ASSERT_TRUE(std::equal(one.begin(), one.end(), after.obs.begin() + i * os)) << "trial " << i;
  }
}

TEST(MazeConfig, ValidationSaysWhatIsWrong) {
  EnvConfig cfg;
  cfg.kind = EnvKind::kMaze;
  cfg.validate();
  EXPECT_EQ(cfg.name(), "maze");
  EXPECT_EQ(cfg.episodes(), 2);
  EXPECT_EQ(cfg.trial_length(), 500);
  auto message = [&](auto change) {
    EnvConfig c = cfg;
    change(c.maze);
    try {
      c.validate();
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  for (int32_t size : {1, 4, 11})
    EXPECT_NE(message([&](MazeParams& m) { m.size = size; }).find("--size must be 3, 5, 7 or 9"), std::string::npos);
  EXPECT_EQ(message([](MazeParams& m) { m.size = 3; }), "");
  EXPECT_EQ(message([](MazeParams& m) { m.size = 7; }), "");  // its bound is 166 steps
  EXPECT_NE(message([](MazeParams& m) { m.layout = 2; }).find("layout 2 is unknown"), std::string::npos);
  EXPECT_EQ(parse_maze_layout("corridor"), Maze::kCorridor);
  EXPECT_EQ(maze_layout_name(parse_maze_layout("prim")), "prim");
  EXPECT_THROW(parse_maze_layout("spiral"), InputError);
  EXPECT_NE(message([](MazeParams& m) { m.episodes = 0; }).find("--episodes"), std::string::npos);
  EXPECT_NE(message([](MazeParams& m) { m.mazes = -1; }).find("--mazes"), std::string::npos);
  EXPECT_EQ(message([](MazeParams& m) { m.mazes = 0; }), "");  // the evaluation's configurations
  EXPECT_EQ(message([](MazeParams& m) { m.horizon = Maze::max_shortest_path(m); }), "");
  EXPECT_NE(message([](MazeParams& m) { m.horizon = 88; }).find("--horizon 88 is too small"), std::string::npos);
  EXPECT_NE(message([](MazeParams& m) { m.size = 9; }).find("needs at least 265 steps"), std::string::npos);
  EXPECT_EQ(parse_env_kind("maze"), EnvKind::kMaze);
}

}  // namespace
}  // namespace rl2
