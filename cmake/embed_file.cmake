# Embeds a file into a C++ source as a byte array (run at build time: cmake -DIN=... -DOUT=...
# -DNAME=... -P embed_file.cmake). Used for Chart.js from Debian's libjs-chart.js: the report
# inlines it, and it is never committed to this repository.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE "${OUT}" "// Generated from ${IN} by cmake/embed_file.cmake; do not edit.\n#include <cstddef>\nnamespace bp::embedded {\nextern const unsigned char ${NAME}[] = {${body}0x00};\nextern const std::size_t ${NAME}_size = ${bytes};\n}\n")
