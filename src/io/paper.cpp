// Parses the embedded CSV tables once and answers cell look-ups.
#include "rl2/io/paper.hpp"

#include <cmath>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string_view>
#include <vector>

#include "rl2/core/check.hpp"

namespace rl2 {
namespace paper_data {
extern const std::string_view kTable1Bandits;
extern const std::string_view kTable2Mdps;
extern const std::string_view kTable3Maze;
}  // namespace paper_data

namespace {

// CSV header names -> our policy names.
std::string column_key(std::string name) {
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// A cell as written, and its number (NaN when empty or not a number, e.g. Table 3's metric names).
struct Cell {
  std::string text;
  double value;
};

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;
};

Table parse(std::string_view text) {
  Table t;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    if (t.columns.empty()) {
      for (auto& c : cells) t.columns.push_back(column_key(c));
      continue;
    }
    if (line.back() == ',') cells.emplace_back();  // getline drops a trailing empty cell
    std::vector<Cell> row;
    for (auto& c : cells) {
      char* end = nullptr;
      const double v = std::strtod(c.c_str(), &end);
      row.push_back(Cell{c, !c.empty() && *end == '\0' ? v : std::nan("")});
    }
    RL2_CHECK(row.size() == t.columns.size(), "malformed paper table row: " + line);
    t.rows.push_back(row);
  }
  return t;
}

std::optional<double> lookup(const Table& t, const std::map<std::string, double>& keys, const std::string& column) {
  size_t col = t.columns.size();
  for (size_t c = 0; c < t.columns.size(); ++c)
    if (t.columns[c] == column) col = c;
  if (col == t.columns.size()) return std::nullopt;
  for (const auto& row : t.rows) {
    bool match = true;
    for (const auto& [k, v] : keys) {
      for (size_t c = 0; c < t.columns.size(); ++c)
        if (t.columns[c] == k && row[c].value != v) match = false;
    }
    if (match) return row[col].value;
  }
  return std::nullopt;
}

const Table& maze_table() {
  static const Table t = parse(paper_data::kTable3Maze);
  return t;
}

}  // namespace

std::optional<double> paper_value(const EnvConfig& cfg, const std::string& column) {
  static const Table bandits = parse(paper_data::kTable1Bandits);
  static const Table mdps = parse(paper_data::kTable2Mdps);
  if (cfg.kind == EnvKind::kBandit)
    return lookup(bandits, {{"n", cfg.bandit.episodes}, {"k", cfg.bandit.arms}}, column);
  if (cfg.kind != EnvKind::kMdp) return std::nullopt;  // Table 3 (maze) has no rows keyed like these
  if (cfg.mdp.states != 10 || cfg.mdp.actions != 5 || cfg.mdp.horizon != 10) return std::nullopt;
  return lookup(mdps, {{"n", cfg.mdp.episodes}}, column);
}

std::optional<double> paper_maze_value(const std::string& metric, int episode, const std::string& column) {
  const Table& t = maze_table();
  size_t col = t.columns.size(), metric_col = col, episode_col = col;
  for (size_t c = 0; c < t.columns.size(); ++c) {
    if (t.columns[c] == column) col = c;
    if (t.columns[c] == "metric") metric_col = c;
    if (t.columns[c] == "episode") episode_col = c;
  }
  RL2_CHECK(metric_col < t.columns.size() && episode_col < t.columns.size(), "paper Table 3 lacks metric/episode columns");
  if (col == t.columns.size()) return std::nullopt;
  for (const auto& row : t.rows) {
    const Cell& ep = row[episode_col];
    if (row[metric_col].text != metric || (episode == 0 ? !ep.text.empty() : ep.value != episode)) continue;
    if (std::isnan(row[col].value)) return std::nullopt;
    return row[col].value;
  }
  return std::nullopt;
}

}  // namespace rl2
