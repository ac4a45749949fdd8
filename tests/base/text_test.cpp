#include "base/text.hpp"

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "base/numbers.hpp"

using namespace bp::base;

TEST(Utf8, AcceptsWellFormedTextAndNamesTheFirstBadByte) {
  EXPECT_FALSE(first_invalid_utf8("plain ascii"));
  EXPECT_FALSE(first_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_EQ(first_invalid_utf8("ab\xb1"), 2u);          // lone continuation byte
  EXPECT_EQ(first_invalid_utf8("a\xc0\xaf"), 1u);       // overlong
  EXPECT_EQ(first_invalid_utf8("a\xed\xa0\x80"), 1u);   // surrogate
  EXPECT_EQ(first_invalid_utf8("a\xf4\x90\x80\x80"), 1u);  // above U+10FFFF
  EXPECT_EQ(first_invalid_utf8("a\xe2\x82"), 1u);       // truncated
  EXPECT_EQ(first_invalid_utf8("\xff"), 0u);
}

TEST(Utf8, PositionIsOneBasedLineAndColumn) {
  auto p = position_of("ab\ncd\xb1", 5);
  EXPECT_EQ(p.line, 2u);
  EXPECT_EQ(p.column, 3u);
}

TEST(Trim, StripsBlanksOnBothSides) {
  EXPECT_EQ(trim(" \t x y \r\n"), "x y");
  EXPECT_EQ(trim(""), "");
}

TEST(Numbers, OnlyFiniteNumbersInRangePass) {
  EXPECT_EQ(parse_number("1.5", 0, 10), 1.5);
  for (const char* bad : {"nan", "NAN", "inf", "-inf", "infinity", "1e400", "5s", " 5", "", "0x", "11"})
    EXPECT_FALSE(parse_number(bad, 0, 10)) << bad;
  EXPECT_EQ(parse_integer("42", 0, 100), 42);
  for (const char* bad : {"4.2", "1e3", "99999999999999999999", "-1", "12a"}) EXPECT_FALSE(parse_integer(bad, 0, 100)) << bad;
}

TEST(EngineErrorLine, TheEngineLineOfAStartupFailureNotTheCutAtLastOutput) {
  const std::string startup =
      "engine (pid 1) exited with status 3 during startup; bench-proxy does not restart engines. Last output:\n"
      "  | mock-engine: loading model m\n  | mock-engine: fatal: error: invalid argument: --flash-atn";
  EXPECT_EQ(bp::base::engine_error_line(startup), "error: invalid argument: --flash-atn");
  // A ledger keeps newlines as "\n"; an aggregate's reasons are one line per trial.
  EXPECT_EQ(bp::base::engine_error_line("x. Last output:\\n  | loading\\n  | Traceback\\n  | ValueError: bad"), "ValueError: bad");
  EXPECT_EQ(bp::base::engine_error_line("trial 1: x. Last output: error: a; trial 2: x. Last output: error: b"), "error: a");
  EXPECT_EQ(bp::base::engine_error_line("x. Last output:\n  | just the last line"), "just the last line");
  EXPECT_EQ(bp::base::engine_error_line("no output quoted"), "");
  EXPECT_EQ(bp::base::engine_error_line("x. Last output:"), "");
}

TEST(ForEachLine, NumbersEveryLineSkipsBlankOnesAndMarksAnUnfinishedLast) {
  std::vector<std::tuple<std::string, std::size_t, bool>> got;
  bp::base::for_each_line("a\n\n  \r\nb\r\nc", [&](std::string_view l, std::size_t n, bool complete) {
    got.emplace_back(std::string(l), n, complete);
    return true;
  });
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], std::make_tuple(std::string("a"), std::size_t{1}, true));
  EXPECT_EQ(got[1], std::make_tuple(std::string("b\r"), std::size_t{4}, true));
  EXPECT_EQ(got[2], std::make_tuple(std::string("c"), std::size_t{5}, false));
  std::size_t calls = 0;
  bp::base::for_each_line("x\ny\nz\n", [&](std::string_view, std::size_t, bool) { return ++calls < 2; });
  EXPECT_EQ(calls, 2u);  // false stops
}

TEST(ShortenMiddle, KeepsTheHeadAndTheTailSoVariantsReadApart) {
  using bp::base::shorten_middle;
  EXPECT_EQ(shorten_middle("short.yaml", 19), "short.yaml");
  std::string a = shorten_middle("args.-itl-ms=5_env.MOCK_KNOB=a.yaml", 19);
  std::string b = shorten_middle("args.-itl-ms=5_env.MOCK_KNOB=b.yaml", 19);
  EXPECT_EQ(a.size(), 19u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, "args.-it...B=a.yaml");
  // A multi-byte character is never cut in two.
  std::string u = shorten_middle("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 8);
  EXPECT_FALSE(bp::base::first_invalid_utf8(u).has_value()) << u;
  EXPECT_LE(u.size(), 8u);
}

TEST(OneLineReason, AReasonCutAtLastOutputGetsTheEnginesLine) {
  std::string r = "the engine exited with status 2 during startup. Last output:\n  | x\n  | error: unknown flag --foo";
  EXPECT_EQ(bp::base::one_line_reason(r),
            "the engine exited with status 2 during startup. Last output: error: unknown flag --foo");
  EXPECT_EQ(bp::base::one_line_reason("plain reason\nmore"), "plain reason");
}
