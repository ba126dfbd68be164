// First-person maze task distribution (DESIGN.md section 6, paper section 4.3 and Table 3); choices and
// numbers in docs/maze.md.
//
// Layout: randomised Prim's algorithm on a (2s+1)x(2s+1) grid (size 5: s = 3, a 7x7 grid; size 9: s = 5,
// 11x11). Cells with both coordinates odd are nodes; Prim carves the passage cell between two nodes;
// the outer ring stays wall. A configuration (layout, start node and heading, target node != start)
// is a pure function of (seed, configuration id) through the kMaze stream; with `mazes` = M > 0 a
// trial's configuration id is uniform over [0, M) (a fixed training pool per seed), with M = 0 it is the
// trial id (evaluation: the eval stream's ids never meet 0..M-1).
// Dynamics: position (x, y) in cell units, cell (i, j) covers [i, i+1) x [j, j+1); heading = one of 48
// directions, turns of +-4 (30 deg), forward moves of 0.25 cell. The agent is a disc of radius 0.2: a
// move whose disc (bounding box) overlaps a wall is rejected, one that overlaps the target ends the
// episode. Rewards: -0.04 per step, -0.001 more for a rejected move, +1 at the target. Trials have
// episodes * horizon steps; once its episodes are done a trial is finished and its steps return reward
// exactly 0 and done 0 (no other step has reward 0), so a trainer can mask them.
// Observation: [3, 30, 40] RGB in [-1, 1] (CHW), raycast per column by DDA with a camera plane
// (Lode Vandevenne's raycasting tutorial): ray = dir + plane * (2 col / W - 1), |plane| = 0.66 (66 deg).
// Parallel layout: sample_task/reset/step run one thread per trial; render_column is one column, so
// the GPU renders one thread per column (env_ops.hpp's EnvRender) and observe() loops over the columns.
// Arithmetic is + - * / and comparisons on floats with a literal direction table (no libm), so the
// CPU (-ffp-contract=off) and the GPU (-fmad=false) agree bit for bit.
#pragma once

#include <cstdint>

#include "rl2/core/hd.hpp"
#include "rl2/core/rng.hpp"
#include "rl2/env/step.hpp"

namespace rl2 {

struct MazeParams {
  int32_t size = 5;       // interior width in cells, odd, 3..9: 5 is a 7x7 grid, 9 an 11x11 grid
  int32_t episodes = 2;
  int32_t horizon = 250;  // steps per episode at most
  int32_t mazes = 1000;   // training pool of configurations; 0: every trial its own (evaluation)
  int32_t layout = 0;     // Maze::kPrim (the paper's mazes) or Maze::kCorridor (a training-ladder rung)
};

struct Maze {
  using Params = MazeParams;
  struct State {
    float x, y;       // position in cell units
    int32_t heading;  // direction index in [0, kHeadings)
    int32_t episode;  // episodes finished so far in this trial; == episodes: the trial is finished
    int32_t t;        // steps taken in the current episode
  };

  static constexpr int32_t kWidth = 40;  // observation columns (one ray each)
  static constexpr int32_t kHeight = 30;
  static constexpr int32_t kHeadings = 48;  // 7.5 deg apart
  static constexpr int32_t kTurn = 4;       // 30 deg per turn action
  static constexpr int32_t kTurnLeft = 0, kTurnRight = 1, kForward = 2;
  static constexpr float kStepLength = 0.25f;
  static constexpr float kRadius = 0.2f;
  static constexpr float kPlane = 0.66f;
  static constexpr float kStepCost = 0.04f;
  static constexpr float kBumpCost = 0.001f;
  static constexpr float kGoalReward = 1.0f;
  // Cell codes in the task's grid.
  static constexpr int32_t kFree = 0, kWall = 1, kTarget = 2;
  static constexpr int32_t kMaxEdges = 40;  // passages of the largest (s = 5) node grid: 2 s (s - 1)
  // Layouts: a Prim maze over the whole grid, or one straight corridor (the nodes' bottom row, carved
  // end to end) with the start at one end and the target at the other, the first rung of the training
  // ladder (docs/maze.md): the target is in view once the agent faces along the corridor.
  static constexpr int32_t kPrim = 0, kCorridor = 1;

  // Task layout (floats): cells [G*G] (index y*G + x, a cell code), then the start node's cell (x, y),
  // the start heading index and the target node's cell (x, y). Small integers, exact as floats.
  RL2_HD static int32_t grid(const Params& p) { return p.size + 2; }
  RL2_HD static int32_t nodes_per_side(const Params& p) { return (p.size + 1) / 2; }
  RL2_HD static int64_t task_size(const Params& p) { return int64_t{grid(p)} * grid(p) + 5; }
  RL2_HD static int64_t obs_size(const Params&) { return 3 * kHeight * kWidth; }
  RL2_HD static int32_t num_actions(const Params&) { return 3; }
  RL2_HD static int32_t horizon(const Params& p) { return p.horizon; }
  RL2_HD static int64_t trial_length(const Params& p) { return int64_t{p.episodes} * p.horizon; }
  // Steps an optimal agent may need, at most: turn to an axis (<= 180 deg: 6 turns), walk a path
  // through every node (n - 1 passages of 8 steps, the last one 2 short because touching the target
  // cell ends the episode) with a 90 deg turn (3 turns) at each of the n - 2 inner nodes: 11 n - 10.
  // A corridor is a path through its s nodes with no inner turn: 6 + 8 (s - 1) - 2 <= 11 s - 10.
  RL2_HD static int32_t max_shortest_path(const Params& p) {
    const int32_t n = p.layout == kCorridor ? nodes_per_side(p) : nodes_per_side(p) * nodes_per_side(p);
    return 11 * n - 10;
  }
  RL2_HD static bool finished(const Params& p, const State& st) { return st.episode >= p.episodes; }

  // cos(k * 7.5 deg), k = 0..12, rounded to float; the other directions follow by symmetry, exactly.
  RL2_HD static float quarter_cos(int32_t k) {
    static constexpr float kCos[13] = {0x1p+0f,        0x1.fb9eaap-1f, 0x1.ee8dd4p-1f, 0x1.d906bcp-1f, 0x1.bb67aep-1f,
                                       0x1.963268p-1f, 0x1.6a09e6p-1f, 0x1.37af94p-1f, 0x1p-1f,        0x1.87de2ap-2f,
                                       0x1.0907dcp-2f, 0x1.0b5150p-3f, 0.0f};
    return kCos[k];
  }
  RL2_HD static float heading_cos(int32_t h) {
    const int32_t q = h / 12, r = h % 12;
    return q == 0 ? quarter_cos(r) : q == 1 ? -quarter_cos(12 - r) : q == 2 ? -quarter_cos(r) : quarter_cos(12 - r);
  }
  RL2_HD static float heading_sin(int32_t h) { return heading_cos((h + 36) % kHeadings); }  // sin a = cos(a - 90)

  RL2_HD static int32_t cell_at(const Params& p, const float* task, int32_t x, int32_t y) {
    const int32_t g = grid(p);
    if (x < 0 || y < 0 || x >= g || y >= g) return kWall;
    return static_cast<int32_t>(task[y * g + x]);
  }

  // Which configuration trial `trial` plays.
  RL2_HD static uint64_t config_id(const Params& p, uint64_t seed, uint64_t trial) {
    if (p.mazes == 0) return trial;
    return uniform_int(philox_bits(seed, trial, 0, Purpose::kTask, 0).v[0], static_cast<uint32_t>(p.mazes));
  }

  RL2_HD static void sample_task(const Params& p, uint64_t seed, uint64_t trial, float* task) {
    make_config(p, seed, config_id(p, seed, trial), task);
  }

  // Randomised Prim from a random node: keep a list of passages from the maze to unvisited nodes; take
  // one at random; if its far node is still unvisited, carve the passage and the node and add the
  // node's passages. Each passage enters the list at most once, so kMaxEdges bounds the list.
  RL2_HD static void make_config(const Params& p, uint64_t seed, uint64_t config, float* task) {
    const int32_t g = grid(p), s = nodes_per_side(p), nodes = s * s;
    const int32_t dx[4] = {1, 0, -1, 0}, dy[4] = {0, 1, 0, -1};
    RandomStream rs(seed, config, 0, Purpose::kMaze);
    for (int32_t c = 0; c < g * g; ++c) task[c] = static_cast<float>(kWall);
    if (p.layout == kCorridor) {
      for (int32_t x = 1; x < g - 1; ++x) task[g + x] = static_cast<float>(kFree);
      const int32_t start = rs.next_u32() >> 31 ? s - 1 : 0;  // which end; the target is at the other
      const int32_t heading = kTurn * static_cast<int32_t>(uniform_int(rs.next_u32(), kHeadings / kTurn));
      finish_config(p, task, start, heading, s - 1 - start);
      return;
    }
    int32_t edges[kMaxEdges];  // node * 4 + direction
    int32_t count = 0;
    auto carve = [&](int32_t node) {
      const int32_t nx = node % s, ny = node / s;
      task[(2 * ny + 1) * g + 2 * nx + 1] = static_cast<float>(kFree);
      for (int32_t d = 0; d < 4; ++d) {
        const int32_t mx = nx + dx[d], my = ny + dy[d];
        if (mx >= 0 && my >= 0 && mx < s && my < s && task[(2 * my + 1) * g + 2 * mx + 1] != kFree)
          edges[count++] = node * 4 + d;
      }
    };
    carve(static_cast<int32_t>(uniform_int(rs.next_u32(), static_cast<uint32_t>(nodes))));
    while (count > 0) {
      const int32_t k = static_cast<int32_t>(uniform_int(rs.next_u32(), static_cast<uint32_t>(count)));
      const int32_t e = edges[k];
      edges[k] = edges[--count];
      const int32_t node = e / 4, d = e % 4;
      const int32_t mx = node % s + dx[d], my = node / s + dy[d];
      if (task[(2 * my + 1) * g + 2 * mx + 1] == kFree) continue;
      task[(2 * my + 1 - dy[d]) * g + 2 * mx + 1 - dx[d]] = static_cast<float>(kFree);
      carve(my * s + mx);
    }
    // Start headings are multiples of the turn, so the four axis directions can be faced exactly.
    const int32_t start = static_cast<int32_t>(uniform_int(rs.next_u32(), static_cast<uint32_t>(nodes)));
    const int32_t heading = kTurn * static_cast<int32_t>(uniform_int(rs.next_u32(), kHeadings / kTurn));
    int32_t target = static_cast<int32_t>(uniform_int(rs.next_u32(), static_cast<uint32_t>(nodes - 1)));
    if (target >= start) ++target;
    finish_config(p, task, start, heading, target);
  }
  // Writes the task's tail (start cell, heading, target cell) and marks the target cell; nodes are
  // numbered row by row from the bottom left.
  RL2_HD static void finish_config(const Params& p, float* task, int32_t start, int32_t heading, int32_t target) {
    const int32_t g = grid(p), s = nodes_per_side(p);
    float* tail = task + g * g;
    tail[0] = static_cast<float>(2 * (start % s) + 1);
    tail[1] = static_cast<float>(2 * (start / s) + 1);
    tail[2] = static_cast<float>(heading);
    tail[3] = static_cast<float>(2 * (target % s) + 1);
    tail[4] = static_cast<float>(2 * (target / s) + 1);
    task[(2 * (target / s) + 1) * g + 2 * (target % s) + 1] = static_cast<float>(kTarget);
  }

  // Start pose: the centre of the start node, the start heading.
  RL2_HD static void place_at_start(const Params& p, const float* task, State& st) {
    const float* tail = task + int64_t{grid(p)} * grid(p);
    st.x = tail[0] + 0.5f;
    st.y = tail[1] + 0.5f;
    st.heading = static_cast<int32_t>(tail[2]);
  }
  RL2_HD static void reset(const Params& p, const float* task, State& st) {
    place_at_start(p, task, st);
    st.episode = 0;
    st.t = 0;
  }

  // Actions: 0 turn left (+30 deg, counter-clockwise with y up), 1 turn right, 2 forward. A finished
  // trial (all episodes done) returns reward 0 and done 0 and stays as it is.
  RL2_HD static StepOut step(const Params& p, const float* task, State& st, int32_t action, uint64_t, uint64_t) {
    StepOut out{0.0f, 0};
    if (finished(p, st)) return out;
    out.reward = -kStepCost;
    if (action == kForward) {
      const float x = st.x + kStepLength * heading_cos(st.heading);
      const float y = st.y + kStepLength * heading_sin(st.heading);
      // Cells overlapped by the disc's bounding box [x - r, x + r] x [y - r, y + r] (touching is not
      // overlapping); r < 1/2, so at most two per axis. Positions stay inside the outer wall, so > 0.
      bool wall = false, target = false;
      for (int32_t j = static_cast<int32_t>(y - kRadius); j <= static_cast<int32_t>(y + kRadius); ++j) {
        for (int32_t i = static_cast<int32_t>(x - kRadius); i <= static_cast<int32_t>(x + kRadius); ++i) {
          if (!(x + kRadius > static_cast<float>(i)) || !(y + kRadius > static_cast<float>(j))) continue;
          const int32_t c = cell_at(p, task, i, j);
          wall = wall || c == kWall;
          target = target || c == kTarget;
        }
      }
      if (wall) {
        out.reward = -kStepCost - kBumpCost;
      } else {
        st.x = x;
        st.y = y;
        if (target) {
          out.reward = kGoalReward - kStepCost;
          out.done = 1;
        }
      }
    } else {
      st.heading = (st.heading + (action == kTurnLeft ? kTurn : kHeadings - kTurn)) % kHeadings;
    }
    st.t += 1;
    if (st.t == p.horizon) out.done = 1;
    if (out.done) {
      st.episode += 1;
      st.t = 0;
      place_at_start(p, task, st);
    }
    return out;
  }

  // RGB in [-1, 1] of: walls facing -x, +x, -y, +y (west, east, south, north with y up); the target
  // seen on an x side and on a y side; ceiling; floor.
  static constexpr int32_t kCeiling = 6, kFloor = 7;
  RL2_HD static float palette(int32_t colour, int32_t channel) {
    static constexpr float kPalette[8][3] = {
        {0.5f, 0.5f, 0.5f},    {0.0f, 0.0f, 0.0f},    {-0.25f, -0.125f, 0.25f}, {0.5f, 0.375f, 0.0f},
        {1.0f, -1.0f, -1.0f},  {0.5f, -1.0f, -1.0f},  {-0.5f, -0.5f, -0.25f},   {-0.25f, -0.5f, -0.75f}};
    return kPalette[colour][channel];
  }

  // One column of the first-person view. obs: [3, kHeight, kWidth] (channel, row from the top, col).
  // DDA walks the ray's cells until a wall or the target; the perpendicular distance d gives a column
  // of min(H, floor(H / d)) wall pixels, centred; ceiling above, floor below.
  RL2_HD static void render_column(const Params& p, const float* task, const State& st, int32_t col, float* obs) {
    const float dir_x = heading_cos(st.heading), dir_y = heading_sin(st.heading);
    // The plane points to the agent's right ((c, s) -> (s, -c) with y up), so column 0 looks left.
    const float plane_x = kPlane * dir_y, plane_y = -kPlane * dir_x;
    const float camera = 2.0f * static_cast<float>(col) / static_cast<float>(kWidth) - 1.0f;
    const float ray_x = dir_x + plane_x * camera, ray_y = dir_y + plane_y * camera;
    constexpr float kFar = 1e30f;
    const float delta_x = ray_x == 0.0f ? kFar : (ray_x < 0.0f ? -1.0f / ray_x : 1.0f / ray_x);
    const float delta_y = ray_y == 0.0f ? kFar : (ray_y < 0.0f ? -1.0f / ray_y : 1.0f / ray_y);
    int32_t map_x = static_cast<int32_t>(st.x), map_y = static_cast<int32_t>(st.y);
    const int32_t step_x = ray_x < 0.0f ? -1 : 1, step_y = ray_y < 0.0f ? -1 : 1;
    float side_x = (ray_x < 0.0f ? st.x - static_cast<float>(map_x) : static_cast<float>(map_x) + 1.0f - st.x) * delta_x;
    float side_y = (ray_y < 0.0f ? st.y - static_cast<float>(map_y) : static_cast<float>(map_y) + 1.0f - st.y) * delta_y;
    int32_t side = 0, cell = kWall;
    for (int32_t k = 0; k < 2 * grid(p); ++k) {  // the outer wall stops every ray within 2 G cells
      if (side_x < side_y) {
        side_x += delta_x;
        map_x += step_x;
        side = 0;
      } else {
        side_y += delta_y;
        map_y += step_y;
        side = 1;
      }
      cell = cell_at(p, task, map_x, map_y);
      if (cell != kFree) break;
    }
    const float dist = side == 0 ? side_x - delta_x : side_y - delta_y;
    const float h = static_cast<float>(kHeight) / dist;
    const int32_t wall_rows = h >= static_cast<float>(kHeight) ? kHeight : static_cast<int32_t>(h);
    const int32_t top = (kHeight - wall_rows) / 2;
    const int32_t face = cell == kTarget ? 4 + side : 2 * side + (side == 0 ? (step_x > 0 ? 0 : 1) : (step_y > 0 ? 0 : 1));
    for (int32_t r = 0; r < kHeight; ++r) {
      const int32_t colour = r < top ? kCeiling : r < top + wall_rows ? face : kFloor;
      for (int32_t c = 0; c < 3; ++c) obs[(c * kHeight + r) * kWidth + col] = palette(colour, c);
    }
  }
  // obs: [3, kHeight, kWidth], the view from the current pose.
  RL2_HD static void observe(const Params& p, const float* task, const State& st, float* obs) {
    for (int32_t col = 0; col < kWidth; ++col) render_column(p, task, st, col, obs);
  }
};

}  // namespace rl2
