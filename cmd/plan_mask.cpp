// lightforce plan-mask: run a mask planner on given q / k (for research, and to check planners against other
// implementations). Writes the BlockMask (CSR) and the pooled block scores as safetensors, plus a JSON summary.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "attention/backend_registry.h"
#include "attention/planners.h"
#include "commands.h"
#include "machine_output.h"
#include "core/embedded.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/non_finite.h"
#include "io/safetensors.h"
#include "run_setup.h"

namespace lf::cmd {

namespace {
Tensor read_single(const std::string& path, const char* what) {
  const auto file = Checkpoint::open(path);
  LF_CHECK(file->entries().size() == 1, "{} '{}': expected exactly one tensor, found {}", what, path,
           file->entries().size());
  const Tensor tensor = file->view(file->entries()[0].name);
  LF_CHECK(tensor.rank() == 3, "{} '{}': expected [tokens, heads, head_dim], found {}", what, path,
           shape_str(tensor.shape()));
  LF_CHECK(dtype_is_float(tensor.dtype()), "{} '{}': dtype {} is not a float type", what, path,
           dtype_name(tensor.dtype()));
  LF_CHECK(tensor.dim(0) > 0 && tensor.dim(1) > 0 && tensor.dim(2) > 0, "{} '{}': empty tensor {}", what, path,
           shape_str(tensor.shape()));
  check_finite(tensor, fmt::format("{} '{}': tensor '{}'", what, path, file->entries()[0].name));
  return tensor.to(DType::F32);
}
}  // namespace

int plan_mask(int argc, char** argv) {
  cxxopts::Options flags("lightforce plan-mask",
                         "Plan a block mask from q and k files (post-RoPE, [tokens, heads, head_dim], bf16 or f32).");
  flags.add_options()
      // -q / --queries: cxxopts reads a one-letter name as a short option only, so "--q" never parsed.
      ("q,queries", "current chunk's queries, safetensors with one tensor", cxxopts::value<std::string>())
      ("k,keys", "visible keys (cache + chunk, chunk last), safetensors with one tensor", cxxopts::value<std::string>())
      ("attention", "attention preset or YAML (backend, sparsity, keep_*, block sizes)",
       cxxopts::value<std::string>()->default_value("lightforcing-short"))
      ("set", "attention.* or pipeline.frames / pipeline.chunk_frames override (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("chunk", "chunk index (selects the CAG sparsity; chunk 0 is dense for lightforcing)",
       cxxopts::value<int64_t>())
      ("tokens-per-frame", "tokens in one latent frame (1560 at 480x832, 1536 at 512x768)", cxxopts::value<int64_t>())
      ("o,out", "output safetensors (a .json summary is written beside it)", cxxopts::value<std::string>())
      ("h,help", "show this help");
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  if (!result.unmatched().empty()) usage_fail("unexpected argument '{}'", result.unmatched().front());
  for (const char* required : {"queries", "keys", "chunk", "tokens-per-frame", "out"})
    LF_USAGE_CHECK(result.count(required), "plan-mask needs --{}", required);
  const std::string out = result["out"].as<std::string>();
  // Beside the output, named by its stem only: a dot in a folder name must not cut the path short.
  const std::string json_path = std::filesystem::path(out).replace_extension(".json").string();
  check_output_writable(out, "--out");
  check_distinct_outputs({{"--out", out}, {"its JSON summary", json_path}});
  ConfigSources sources;
  sources.attention = result["attention"].as<std::string>();
  sources.overrides = set_overrides(result);
  for (const auto& assignment : sources.overrides)
    LF_CHECK(assignment.rfind("attention.", 0) == 0 || assignment.rfind("pipeline.frames=", 0) == 0 ||
                 assignment.rfind("pipeline.chunk_frames=", 0) == 0,
             "plan-mask: --set '{}' is not an attention or pipeline.frames/chunk_frames setting", assignment);
  const RunConfig config = load_run_config(sources);

  const Tensor q = read_single(result["queries"].as<std::string>(), "--queries");
  const Tensor k = read_single(result["keys"].as<std::string>(), "--keys");
  const int64_t tokens_per_frame = result["tokens-per-frame"].as<int64_t>();
  LF_CHECK(tokens_per_frame > 0 && k.dim(0) % tokens_per_frame == 0 && q.dim(0) % tokens_per_frame == 0,
           "plan-mask: q has {} and k {} tokens, not whole frames of {}", q.dim(0), k.dim(0), tokens_per_frame);
  LF_CHECK(q.dim(1) == k.dim(1) && q.dim(2) == k.dim(2), "plan-mask: q {} and k {} differ in heads or head_dim",
           shape_str(q.shape()), shape_str(k.shape()));
  LF_CHECK(q.dim(0) <= k.dim(0), "plan-mask: q has {} tokens but k only {}: k holds the cache and the chunk, chunk "
           "last", q.dim(0), k.dim(0));
  const int64_t chunks = config.pipeline.frames / config.pipeline.chunk_frames;
  const int64_t chunk = result["chunk"].as<int64_t>();
  LF_CHECK(chunk >= 0 && chunk < chunks,
           "plan-mask: --chunk {} is outside 0..{} (pipeline.frames {} / chunk_frames {})", chunk, chunks - 1,
           config.pipeline.frames, config.pipeline.chunk_frames);
  LF_CHECK(k.dim(0) / tokens_per_frame <= config.pipeline.frames, "plan-mask: k holds {} frames, more than "
           "pipeline.frames {}", k.dim(0) / tokens_per_frame, config.pipeline.frames);
  AttentionCall call;
  call.chunk = chunk;
  call.q = &q;
  call.k = &k;
  call.v = &k;
  call.frames_visible = k.dim(0) / tokens_per_frame;
  call.frames_in_chunk = q.dim(0) / tokens_per_frame;
  call.tokens_per_frame = tokens_per_frame;
  call.scale = 1.0 / std::sqrt(double(q.dim(2)));
  auto planner = make_planner(config.attention, config.pipeline.frames, config.pipeline.chunk_frames);
  const BlockMask mask = planner->plan(call);
  validate(mask);

  // All pooled block scores [heads, query_blocks, key_blocks], the numbers the dynamic planners select from.
  const PooledBlocks pooled = pool_blocks(q, k, mask.geometry);
  const int64_t query_blocks = mask.geometry.query_blocks(), key_blocks = mask.geometry.key_blocks();
  Tensor scores = Tensor::empty({mask.heads, query_blocks, key_blocks});
  for (int64_t h = 0; h < mask.heads; ++h)
    for (int64_t qb = 0; qb < query_blocks; ++qb)
      for (int64_t kb = 0; kb < key_blocks; ++kb)
        scores.f32()[(h * query_blocks + qb) * key_blocks + kb] =
            float(dot(pooled.query(h, qb), pooled.key(h, kb), pooled.head_dim));
  Tensor offsets = Tensor::empty({int64_t(mask.row_offsets.size())}, DType::I32);
  // An empty vector has a null data pointer, which memcpy must not be given even for 0 bytes (UBSan).
  if (offsets.nbytes() > 0) std::memcpy(offsets.raw(), mask.row_offsets.data(), offsets.nbytes());
  Tensor indices = Tensor::empty({int64_t(mask.key_indices.size())}, DType::I32);
  if (indices.nbytes() > 0) std::memcpy(indices.raw(), mask.key_indices.data(), indices.nbytes());
  write_safetensors(out, {{"row_offsets", offsets}, {"key_indices", indices}, {"block_scores", scores}},
                    {{"format", "lightforce-block-mask"}, {"backend", config.attention.backend}});
  const nlohmann::json summary = versioned({
      {"commit", kGitCommit},
      {"queries", result["queries"].as<std::string>()},
      {"keys", result["keys"].as<std::string>()},
      {"attention_settings", config_json(config)["attention"]},
      {"backend", config.attention.backend},
      {"chunk", call.chunk},
      {"target_sparsity", planner->target_sparsity(call.chunk)},
      {"heads", mask.heads},
      {"query_block", mask.geometry.query_block},
      {"key_block", mask.geometry.key_block},
      {"tokens_per_frame", tokens_per_frame},
      {"query_blocks", query_blocks},
      {"key_blocks", key_blocks},
      {"blocks_per_frame", mask.geometry.blocks_per_frame()},
      {"density", mask.density()},
      {"token_density", mask.token_density()},
      {"layout", "row r = head * query_blocks + query_block selects key_indices[row_offsets[r] .. row_offsets[r+1]); "
                 "key block b = frame b / blocks_per_frame, in-frame block b % blocks_per_frame"}});
  write_file_atomic(json_path, summary.dump(2) + "\n");
  fmt::print("{}\n", summary.dump(2));
  return 0;
}

}  // namespace lf::cmd
