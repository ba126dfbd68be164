// Philox known answers (Random123's published kat_vectors), exact bit-to-float conversions, log_exact
// against libm, and the moments of the samplers (fixed seeds; margins stated per test).
#include <gtest/gtest.h>

#include <cmath>

#include "rl2/core/rng.hpp"
#include "stat_check.hpp"

namespace rl2 {
namespace {

// philox4x32-10 vectors: counter[4] key[2] -> output[4]. Our counter is (trial lo, trial hi, step,
// purpose << 24 | block) and our key is (seed lo, seed hi), so each vector maps to one call.
TEST(Rng, PhiloxKnownAnswers) {
  Bits4 z = philox_bits(0, 0, 0, static_cast<Purpose>(0), 0);
  EXPECT_EQ(z.v[0], 0x6627e8d5u);
  EXPECT_EQ(z.v[1], 0xe169c58du);
  EXPECT_EQ(z.v[2], 0xbc57ac4cu);
  EXPECT_EQ(z.v[3], 0x9b00dbd8u);
  Bits4 f = philox_bits(~uint64_t{0}, ~uint64_t{0}, 0xffffffffu, static_cast<Purpose>(0xff), 0xffffffu);
  EXPECT_EQ(f.v[0], 0x408f276du);
  EXPECT_EQ(f.v[1], 0x41c83b0eu);
  EXPECT_EQ(f.v[2], 0xa20bc7c6u);
  EXPECT_EQ(f.v[3], 0x6d5451fdu);
  Bits4 pi = philox_bits(0x299f31d0a4093822ull, 0x85a308d3243f6a88ull, 0x13198a2eu, static_cast<Purpose>(0x03),
                         0x707344u);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(Rng, ConversionsAreExactAndInRange) {
  EXPECT_EQ(u01(0u), 0.0f);
  EXPECT_EQ(u01(0xffffffffu), 1.0f - 0x1p-24f);
  EXPECT_EQ(u01(0x80000000u), 0.5f);
  EXPECT_EQ(u01_open0(0u), 0x1p-24f);
  EXPECT_EQ(u01_open0(0xffffffffu), 1.0f);
  EXPECT_GT(uniform_signed(0x80000000u), -1.0);
  EXPECT_LT(uniform_signed(0x7fffffffu), 1.0);
  EXPECT_EQ(uniform_signed(0u), 0x1p-32);
  EXPECT_EQ(uniform_int(0u, 7), 0u);
  EXPECT_EQ(uniform_int(0xffffffffu, 7), 6u);
}

TEST(Rng, LogExactMatchesLibm) {
  for (double x : {1e-300, 2.5e-8, 0x1p-24, 0.1, 0.5, 0.70710678, 1.0, 1.0000001, 1.5, 2.0, 10.0, 12345.678, 1e300}) {
    EXPECT_NEAR(log_exact(x), std::log(x), 4e-16 * std::max(1.0, std::fabs(std::log(x)))) << x;
  }
  EXPECT_EQ(log_exact(1.0), 0.0);
}

TEST(Rng, StreamsForDifferentPurposesOrTrialsDiffer) {
  EXPECT_NE(philox_bits(1, 5, 3, Purpose::kReward, 0).v[0], philox_bits(1, 5, 3, Purpose::kTransition, 0).v[0]);
  EXPECT_NE(philox_bits(1, 5, 3, Purpose::kReward, 0).v[0], philox_bits(1, 6, 3, Purpose::kReward, 0).v[0]);
  EXPECT_NE(philox_bits(1, 5, 3, Purpose::kReward, 0).v[0], philox_bits(2, 5, 3, Purpose::kReward, 0).v[0]);
  EXPECT_NE(philox_bits(1, 5, 3, Purpose::kReward, 0).v[0],
            philox_bits(1, 5 | kEvalStream, 3, Purpose::kReward, 0).v[0]);
}

// 400k draws: the standard error of a mean is 1/sqrt(4e5) = 0.0016 (normal) and of a variance about
// sqrt(2/4e5) = 0.0022; margins are 5 standard errors.
TEST(Rng, SamplerMoments) {
  RandomStream rs(42, 7, 0, Purpose::kTask);
  const int n = 400000;
  double su = 0, sn = 0, sn2 = 0, se = 0;
  for (int i = 0; i < n; ++i) {
    su += rs.uniform();
    const double z = rs.normal();
    sn += z;
    sn2 += z * z;
    se += rs.exponential();
  }
  EXPECT_TRUE(test::stat_near("uniform mean", su / n, 0.5, 5 * 0.2887 / std::sqrt(n), 0.2887 / std::sqrt(n)));
  EXPECT_TRUE(test::stat_near("normal mean", sn / n, 0.0, 5 / std::sqrt(n), 1 / std::sqrt(n)));
  EXPECT_TRUE(test::stat_near("normal variance", sn2 / n, 1.0, 5 * std::sqrt(2.0 / n), std::sqrt(2.0 / n)));
  EXPECT_TRUE(test::stat_near("exponential mean", se / n, 1.0, 5 / std::sqrt(n), 1 / std::sqrt(n)));
}

}  // namespace
}  // namespace rl2
