#include "snapshot/libs.hpp"

#include <gtest/gtest.h>

using namespace bp::snap;

TEST(Maps, ParsesAFileBackedLine) {
  auto m = parse_maps_line(
      "7f2c1a000000-7f2c1a021000 r-xp 00001000 08:01 1234567                    /usr/lib/x86_64-linux-gnu/libcuda.so.570.172.08");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->perms, "r-xp");
  EXPECT_EQ(m->inode, 1234567u);
  EXPECT_EQ(m->offset, 0x1000u);
  EXPECT_EQ(m->path, "/usr/lib/x86_64-linux-gnu/libcuda.so.570.172.08");
  EXPECT_FALSE(m->deleted);
}

TEST(Maps, AnonymousAndSpecialLines) {
  auto m = parse_maps_line("7ffd4a1f0000-7ffd4a211000 rw-p 00000000 00:00 0                          [stack]");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->inode, 0u);
  EXPECT_EQ(m->path, "[stack]");
  m = parse_maps_line("7f00-7f10 rw-p 00000000 00:00 0");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->path.empty());
  EXPECT_FALSE(parse_maps_line("not a maps line"));
}

TEST(Maps, DeletedAndPathsWithSpaces) {
  auto m = parse_maps_line("7f00-7f10 r--p 00000000 08:01 99 /opt/my libs/libx.so.1 (deleted)");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->deleted);
  EXPECT_EQ(m->path, "/opt/my libs/libx.so.1");
}

TEST(SharedObjects, RecognisesSonames) {
  EXPECT_TRUE(is_shared_object("/usr/lib/libc.so.6"));
  EXPECT_TRUE(is_shared_object("/x/libggml-cpu.so"));
  EXPECT_TRUE(is_shared_object("/x/_C.cpython-311-x86_64-linux-gnu.so"));
  EXPECT_TRUE(is_shared_object("/x/libcudnn_ops.so.9.1.0"));
  EXPECT_FALSE(is_shared_object("/x/model.safetensors"));
  EXPECT_FALSE(is_shared_object("/run/x.sock"));
  EXPECT_FALSE(is_shared_object("/x/libfoo.so.bak"));
  EXPECT_FALSE(is_shared_object("/usr/lib/locale/C.utf8/LC_CTYPE"));
}

TEST(SharedObjects, VersionFromFileName) {
  EXPECT_EQ(version_from_filename("/usr/lib/x86_64-linux-gnu/libcuda.so.570.172.08"), "570.172.08");
  EXPECT_EQ(version_from_filename("libcudnn.so.9"), "9");
  EXPECT_EQ(version_from_filename("/usr/lib/libstdc++.so.6.0.30"), "6.0.30");
  EXPECT_EQ(version_from_filename("libLLVM-15.so"), "15");
  EXPECT_EQ(version_from_filename("libnccl.so.2.21.5"), "2.21.5");
  EXPECT_EQ(version_from_filename("/x/libggml-base.so"), "");
  EXPECT_EQ(version_from_filename("/x/_C.cpython-311-x86_64-linux-gnu.so"), "");
  EXPECT_EQ(version_from_filename("ld-linux-x86-64.so.2"), "2");
}
