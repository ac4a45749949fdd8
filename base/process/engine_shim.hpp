#pragma once
/// The engine shim's whole work (engine_shim.cpp): fork the engine into its own process group,
/// report its pid and, once it and every process of its tree are gone, its wait status; end the
/// tree when bench-proxy dies. Plain POSIX, no allocation: the same code runs as the standalone
/// `bench-proxy-shim` (linked against nothing) and as bench-proxy's own `__engine-shim` fallback.
///
/// argv: SHIM __engine-shim PARENT_PID CWD EXE ARGV0 ARGS...; envp: the engine's environment.
namespace bp::shim {

int run(int argc, char** argv, char** envp);

}  // namespace bp::shim
