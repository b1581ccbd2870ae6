// lightforce inspect: what is in a checkpoint, from its header alone (no tensor data is read).
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <map>
#include <regex>
#include <set>

#include "commands.h"
#include "machine_output.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "model/wan_weights.h"
#include "run_setup.h"

namespace lf::cmd {

int inspect(int argc, char** argv) {
  cxxopts::Options flags("lightforce inspect", "List a checkpoint's tensors and detected layout without loading them.");
  flags.add_options()("checkpoint", "checkpoint file", cxxopts::value<std::string>())(
      "json", "print JSON instead of a table")("h,help", "show this help");
  flags.parse_positional({"checkpoint"});
  flags.positional_help("CHECKPOINT");
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  if (!result.unmatched().empty()) usage_fail("unexpected argument '{}' (one checkpoint at a time)",
                                              result.unmatched().front());
  LF_USAGE_CHECK(result.count("checkpoint"), "no checkpoint given (usage: lightforce inspect CHECKPOINT)");
  const auto checkpoint = Checkpoint::open(result["checkpoint"].as<std::string>());
  const WeightLayout layout = detect_layout(*checkpoint, "auto");

  // Architecture guess from the official names under the detected prefix.
  std::map<std::string, Shape> model_tensors;
  for (const TensorEntry& entry : checkpoint->entries())
    if (entry.name.rfind(layout.prefix, 0) == 0) model_tensors[entry.name.substr(layout.prefix.size())] = entry.shape;
  std::set<int64_t> blocks;
  const std::regex block_pattern(R"(^blocks\.(\d+)\.)");
  for (const auto& [name, shape] : model_tensors) {
    std::smatch match;
    if (std::regex_search(name, match, block_pattern)) blocks.insert(std::stoll(match[1]));
  }
  nlohmann::json architecture = nlohmann::json::object();
  auto shape_of = [&](const std::string& name) -> const Shape* {
    auto found = model_tensors.find(name);
    return found == model_tensors.end() ? nullptr : &found->second;
  };
  if (const Shape* patch = shape_of("patch_embedding.weight"); patch && patch->size() == 5) {
    architecture["dim"] = (*patch)[0];
    architecture["in_channels"] = (*patch)[1];
    architecture["patch"] = {(*patch)[2], (*patch)[3], (*patch)[4]};
  }
  if (const Shape* ffn = shape_of("blocks.0.ffn.0.weight")) architecture["ffn_dim"] = (*ffn)[0];
  if (const Shape* text = shape_of("text_embedding.0.weight")) architecture["text_dim"] = (*text)[1];
  if (const Shape* time = shape_of("time_embedding.0.weight")) architecture["freq_dim"] = (*time)[1];
  if (!blocks.empty()) architecture["layers"] = *blocks.rbegin() + 1;

  std::map<std::string, int64_t> elements_by_dtype;
  int64_t total_elements = 0;
  for (const TensorEntry& entry : checkpoint->entries()) {
    elements_by_dtype[dtype_name(entry.dtype)] += shape_numel(entry.shape);
    total_elements += shape_numel(entry.shape);
  }

  if (result.count("json")) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const TensorEntry& entry : checkpoint->entries())
      tensors.push_back({{"name", entry.name}, {"dtype", dtype_name(entry.dtype)}, {"shape", entry.shape}});
    nlohmann::json out = {{"path", checkpoint->path()},   {"format", checkpoint->format()},
                          {"layout", layout.description}, {"prefix", layout.prefix},
                          {"tensors", tensors},           {"elements", total_elements},
                          {"elements_by_dtype", elements_by_dtype}, {"architecture", architecture},
                          {"metadata", checkpoint->metadata()}};
    fmt::print("{}\n", versioned(out).dump(2));
    return 0;
  }
  fmt::print("{}: {}, {} tensors, {} elements\n", checkpoint->path(), checkpoint->format(),
             checkpoint->entries().size(), total_elements);
  for (const auto& [dtype, count] : elements_by_dtype) fmt::print("  {:>8}: {} elements\n", dtype, count);
  fmt::print("layout: {} (prefix '{}')\n", layout.description, layout.prefix);
  if (!architecture.empty()) fmt::print("architecture: {}\n", architecture.dump());
  for (const TensorEntry& entry : checkpoint->entries())
    fmt::print("  {:<60} {:>7} {}\n", entry.name, dtype_name(entry.dtype), shape_str(entry.shape));
  return 0;
}

}  // namespace lf::cmd
