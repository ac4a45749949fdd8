#pragma once
/// Configs made from configs: the differences between two config files as units (for `bisect`),
/// a config with chosen units applied, and the knobs of `sweep --vary` (docs/cli.md, "bisect" and
/// "Generated variants"). Pure logic over the YAML text (no interpolation: a generated config is
/// the same file a person would have written); every generated config is then loaded and
/// validated like any other before anything starts.
///
/// A unit is one of:
///  - `env.NAME`: one environment variable (set, changed, or removed);
///  - `args.--flag`: one argv flag with its value, paired as `meta diff` pairs them ("--flag v",
///    "--flag=v", or a lone "--flag"; a repeated flag is `--flag#2`); `args.#N`: the N-th positional;
///  - any other top-level key (`cmd`, `venv`, `cwd`, `model`, `warmup`, ...).
#include <string>
#include <utility>
#include <vector>

namespace bp::variants {

struct unit {
  std::string key;    ///< "env.NAME", "args.--flag", "args.#0", "cmd", ...
  std::string from;   ///< its value in the first config, as YAML text; "(absent)" when it has none
  std::string to;     ///< its value in the second
  std::string label() const;  ///< "env.NAME: 1 -> 2"
};

/// The units in which `bad` differs from `good` (both YAML texts; `good_name` and `bad_name` name
/// them in errors). Throws std::invalid_argument naming the file for text that is not a mapping.
std::vector<unit> diff_units(const std::string& good, const std::string& good_name, const std::string& bad,
                             const std::string& bad_name);

/// `good` with the units named in `keys` taken from `bad`, as YAML text. A generated config lives
/// in another folder: it gets `repo_root:` (GOOD's $REPO_ROOT, which the default cwd and relative
/// paths follow) unless it has one, and a relative `cwd` and `venv` are made absolute against it.
std::string apply_units(const std::string& good, const std::string& bad, const std::vector<std::string>& keys,
                        const std::string& repo_root);

/// One knob of `sweep --vary`: "env.NAME=a,b", "args.--flag=1,2,4", "warmup=1,3".
struct axis {
  std::string key;
  std::vector<std::string> values;
};

/// Parses a --vary spec; throws std::invalid_argument naming what is wrong (no '=', no values,
/// an empty value, an unknown top-level key, a key that cannot be varied: args as a whole, env as
/// a whole, engine).
axis parse_axis(const std::string& spec);

/// `base` with each (key, value) set: an env variable or a flag's value replaced or added, a
/// top-level key replaced. A value is YAML-quoted as a string unless the key is numeric
/// (`warmup`, `*_timeout_s`, `stop_grace_s`). As in apply_units: `repo_root:` pins the base's
/// $REPO_ROOT, and a relative `cwd` and `venv` become absolute.
std::string apply_knobs(const std::string& base, const std::vector<std::pair<std::string, std::string>>& knobs,
                        const std::string& repo_root);

/// Every combination (grid) of the axes, or each value of each axis alone with the others at the
/// base (one at a time: base values are left unset).
std::vector<std::vector<std::pair<std::string, std::string>>> combinations(const std::vector<axis>& axes,
                                                                           bool one_at_a_time);

/// A file name for a variant: "args.--t=2,env.X=a" made safe ("args--t=2_env.X=a"), at most 120
/// bytes (then a hash suffix keeps it unique).
std::string file_stem(const std::vector<std::pair<std::string, std::string>>& knobs);

}  // namespace bp::variants
