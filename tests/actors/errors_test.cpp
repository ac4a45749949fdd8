// bench-proxy's error enum in CAF's error system.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "actors/errors.hpp"

using namespace bp;

TEST(Errors, CarryTheirCodeAndReasonAndRenderThroughTheActorSystem) {
  caf::actor_system_config cfg;
  add_error_category(cfg);
  caf::actor_system sys{cfg};
  caf::error e = make_error(errc::engine_died, "engine (pid 7) killed by SIGKILL after it was ready");
  EXPECT_EQ(e.category(), errc_category);
  EXPECT_EQ(code_of(e), errc::engine_died);
  EXPECT_EQ(reason_of(e), "engine (pid 7) killed by SIGKILL after it was ready");
  EXPECT_EQ(sys.render(e), "bench: engine_died (engine (pid 7) killed by SIGKILL after it was ready)");
  caf::error bare = errc::warmup_failed;  // through make_error, found by ADL
  EXPECT_EQ(code_of(bare), errc::warmup_failed);
  EXPECT_EQ(reason_of(bare), "warmup_failed");
}

TEST(Errors, CafsOwnErrorsAreFailuresWithCafsRendering) {
  caf::error e = caf::make_error(caf::sec::request_timeout);
  EXPECT_EQ(code_of(e), errc::failure);
  EXPECT_NE(reason_of(e).find("request_timeout"), std::string::npos);
  EXPECT_EQ(reason_of(caf::error{}), "");
}
