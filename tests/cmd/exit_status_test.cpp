// The one mapping from errors to exit statuses (docs/cli.md, "Exit codes").
#include <gtest/gtest.h>

#include "cmd/exit_status.hpp"

using namespace bp;
using bp::cli::exit_status;

TEST(ExitStatus, EachErrorHasItsDocumentedStatus) {
  EXPECT_EQ(exit_status(caf::error{}), 0);
  EXPECT_EQ(exit_status(errc::failure), 1);
  EXPECT_EQ(exit_status(errc::usage), 2);
  EXPECT_EQ(exit_status(errc::listen_failed), 3);
  EXPECT_EQ(exit_status(errc::engine_start_failed), 4);
  EXPECT_EQ(exit_status(errc::engine_died), 5);
  EXPECT_EQ(exit_status(errc::warmup_failed), 6);
  EXPECT_EQ(exit_status(errc::interrupted), 130);
  EXPECT_EQ(exit_status(make_error(errc::engine_died, "x")), 5);
  EXPECT_EQ(exit_status(caf::make_error(caf::sec::runtime_error)), 1);
}
