// lightforce encode-text: prompts (or token ids) -> umT5 embeddings in the --text-embeddings format.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "machine_output.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/official_files.h"
#include "model/umt5_text_encoder.h"
#include "run_setup.h"

namespace lf::cmd {

namespace {

std::string read_text_file(const std::string& path, const char* flag) {
  std::ifstream file(path, std::ios::binary);
  LF_CHECK(file, "{} '{}': cannot read the file", flag, path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// "1,2,3" (commas and/or whitespace), or a file holding such a list.
std::vector<int64_t> parse_ids(const std::string& value) {
  std::error_code ignored;
  const bool from_file = std::filesystem::is_regular_file(value, ignored);
  std::string text = from_file ? read_text_file(value, "--ids") : value;
  for (char& c : text)
    if (c == ',') c = ' ';
  std::stringstream stream(text);
  std::vector<int64_t> ids;
  for (std::string word; stream >> word;) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LF_CHECK(used == word.size(), "--ids: '{}' is not an integer token id", word);
    ids.push_back(id);
  }
  LF_CHECK(!ids.empty(), "--ids: no token ids given");
  return ids;
}

// One prompt per line; a final empty line (the file's last newline) is not a prompt, any other blank line is an error.
std::vector<std::string> read_prompts(const std::string& path) {
  const std::string text = read_text_file(path, "--prompts");
  std::vector<std::string> prompts;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    prompts.push_back(line);
  }
  LF_CHECK(!prompts.empty(), "--prompts '{}': the file has no prompts", path);
  return prompts;
}

struct Encoded {
  std::string prompt;
  std::vector<int64_t> ids;
  Tensor context;
  bool cache_hit = false;
};

void write_embeddings(const std::string& path, const Encoded& item, const std::string& encoder_name) {
  Tensor ids = Tensor::empty({int64_t(item.ids.size())}, DType::I64);
  std::copy(item.ids.begin(), item.ids.end(), static_cast<int64_t*>(ids.raw()));
  std::map<std::string, std::string> metadata = {{"encoder", encoder_name}};
  if (!item.prompt.empty()) metadata["prompt"] = item.prompt;
  write_safetensors(path, {{"context", item.context}, {"ids", ids}}, metadata);
}

}  // namespace

int encode_text(int argc, char** argv) {
  cxxopts::Options flags("lightforce encode-text",
                         "Encode prompts with umT5 into text embeddings (the --text-embeddings format of generate).");
  flags.add_options("input")
      ("p,prompt", "the prompt", cxxopts::value<std::string>())
      ("prompts", "a file of prompts, one a line (-o is then a directory)", cxxopts::value<std::string>())
      ("ids", "token ids to encode as given, '1,2,3' or a file of them (no cleaning, no EOS added)",
       cxxopts::value<std::string>());
  flags.add_options("encoder")
      ("model-dir", "the official Wan2.1-T2V-1.3B folder (finds models_t5_umt5-xxl-enc-bf16.pth and "
       "google/umt5-xxl/spiece.model)", cxxopts::value<std::string>())
      ("t5-weights", "umT5 encoder weights (.pth / .safetensors, Wan or Hugging Face names), or random[:SEED]",
       cxxopts::value<std::string>())
      ("tokenizer", "SentencePiece model (spiece.model)", cxxopts::value<std::string>())
      ("encoder", "encoder size: built-in name (umt5-xxl, umt5-tiny) or a YAML file",
       cxxopts::value<std::string>()->default_value("umt5-xxl"))
      ("cache", "embedding cache directory, or off (default: $LF_TEXT_CACHE, else ~/.cache/lightforce/"
       "text-embeddings)", cxxopts::value<std::string>())
      ("device", "auto, cpu, cuda or cuda:N (GPU N)", cxxopts::value<std::string>()->default_value("auto"))
      ("fp8", "GPU: hold the GEMM weights as fp8 e4m3 + per-row scales (half the memory), dequantised to bf16 per "
       "GEMM");
  flags.add_options("output")
      ("o,output", "output .safetensors (a directory with --prompts)", cxxopts::value<std::string>())
      ("pad", "write [max_tokens, dim] with zero rows after the prompt instead of [tokens, dim]")
      ("repeat", "benchmark: load the weights once (resident), encode the first input N more times and report the "
       "median time", cxxopts::value<int>()->default_value("0"))
      ("q,quiet", "no progress on stderr")
      ("json", "print a JSON summary on stdout")
      ("h,help", "show this help");
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  LF_USAGE_CHECK(result.unmatched().empty(), "unexpected argument '{}'",
                 result.unmatched().empty() ? "" : result.unmatched().front());
  const int inputs = int(result.count("prompt") + result.count("prompts") + result.count("ids"));
  LF_USAGE_CHECK(inputs == 1, "give exactly one of --prompt, --prompts or --ids");
  LF_USAGE_CHECK(result.count("output"), "no output: pass -o FILE.safetensors (a directory with --prompts)");
  const std::string output = result["output"].as<std::string>();
  const bool many = result.count("prompts") > 0;
  if (many) {
    std::error_code ignored;
    LF_CHECK(!std::filesystem::exists(output, ignored) || std::filesystem::is_directory(output, ignored),
             "-o '{}': with --prompts the output is a directory, and this is a file", output);
  } else {
    check_output_writable(output, "-o");
  }
  const bool quiet = result.count("quiet") > 0;
  auto text = [&](const char* name) { return result.count(name) ? result[name].as<std::string>() : std::string(); };

  OfficialFileFlags file_flags;
  file_flags.model_dir = text("model-dir");
  file_flags.t5_weights = text("t5-weights");
  file_flags.tokenizer = text("tokenizer");
  const OfficialModelFiles files = resolve_official_files(file_flags);
  Umt5Config config = load_umt5_config(result["encoder"].as<std::string>());
  Umt5EncoderOptions options;
  options.weights = files.t5_weights;
  options.tokenizer = files.tokenizer;
  options.cache = text("cache");
  const std::string weights_for_check = files.t5_weights;
  if (weights_for_check.rfind("random", 0) != 0)
    require_model_file(weights_for_check, "umT5 weights", kOfficialT5Weights, "--t5-weights");
  options.device = select_device(result["device"].as<std::string>());
  options.fp8 = result.count("fp8") > 0;
  LF_CHECK(!options.fp8 || options.device == Device::CUDA, "--fp8 is a GPU option (use --device cuda)");
  const int64_t max_tokens = config.max_tokens, dim = config.dim;
  const int repeat = result["repeat"].as<int>();
  LF_CHECK(repeat >= 0, "--repeat {}: must be >= 0", repeat);
  Umt5TextEncoder encoder(config, options);
  encoder.keep_loaded(many || repeat > 0);

  // Everything that can be refused is checked before any encoding, so a bad line costs no time and writes nothing.
  std::vector<Encoded> items;
  if (result.count("ids")) {
    items.push_back({"", parse_ids(result["ids"].as<std::string>()), Tensor(), false});
    for (size_t i = 0; i < items[0].ids.size(); ++i)
      LF_CHECK(items[0].ids[i] >= 0 && items[0].ids[i] < config.vocab, "--ids: token id {} (position {}) is outside "
               "the vocab of {} ({})", items[0].ids[i], i, config.vocab, config.name);
    LF_CHECK(int64_t(items[0].ids.size()) <= max_tokens, "--ids: {} ids, more than max_tokens {}", items[0].ids.size(),
             max_tokens);
  } else {
    std::vector<std::string> prompts = many ? read_prompts(result["prompts"].as<std::string>())
                                            : std::vector<std::string>{result["prompt"].as<std::string>()};
    for (size_t line = 0; line < prompts.size(); ++line) {
      Umt5Tokens tokens;
      try {
        tokens = encoder.tokenize(prompts[line]);
      } catch (const Error& error) {
        if (!many) throw;
        fail("--prompts line {}: {}", line + 1, error.what());
      }
      if (!quiet)
        for (const std::string& note : encoder.notes(prompts[line]))
          fmt::print(stderr, "note: {}{}\n", many ? fmt::format("line {}: ", line + 1) : "", note);
      items.push_back({prompts[line], tokens.ids, Tensor(), false});
    }
  }

  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < items.size(); ++i) {
    Encoded& item = items[i];
    item.context = item.prompt.empty() ? encoder.encode_ids(item.ids) : encoder.encode_unpadded(item.prompt, &item.cache_hit);
    if (result.count("pad")) {
      Tensor padded = Tensor::zeros({max_tokens, dim});
      padded.slice_rows(0, item.context.dim(0)).copy_from(item.context);
      item.context = padded;
    }
    if (!quiet)
      fmt::print(stderr, "encoded {}/{}: {} tokens{}\n", i + 1, items.size(), item.ids.size(),
                 item.cache_hit ? " (cached)" : "");
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Encode time with the weights resident (the first encode above loaded them): the same ids again, no cache.
  std::vector<double> repeat_ms;
  if (repeat > 0) encoder.encode_ids(items[0].ids);  // loads the weights if a cache hit skipped that; warms up
  for (int i = 0; i < repeat; ++i) {
    const auto begin = std::chrono::steady_clock::now();
    encoder.encode_ids(items[0].ids);  // returns host f32: synchronous with the device
    repeat_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count());
  }
  std::sort(repeat_ms.begin(), repeat_ms.end());
  const double median_ms = repeat_ms.empty() ? 0 : repeat_ms[repeat_ms.size() / 2];

  std::vector<std::string> written;
  if (many) {
    std::filesystem::create_directories(output);
    for (size_t i = 0; i < items.size(); ++i) {
      written.push_back((std::filesystem::path(output) / fmt::format("prompt-{:04d}.safetensors", i)).string());
      write_embeddings(written.back(), items[i], config.name);
    }
  } else {
    written.push_back(output);
    write_embeddings(output, items[0], config.name);
  }
  if (result.count("json")) {
    nlohmann::json entries = nlohmann::json::array();
    for (size_t i = 0; i < items.size(); ++i)
      entries.push_back({{"path", written[i]}, {"prompt", items[i].prompt}, {"tokens", items[i].ids.size()},
                         {"cached", items[i].cache_hit}});
    nlohmann::json summary = versioned({{"encoder", config.name}, {"device", device_name(options.device)},
                                        {"weights", options.weights}, {"tokenizer", options.tokenizer},
                                        {"encode_seconds", seconds}, {"outputs", entries}});
    if (repeat > 0) {
      summary["load_seconds"] = encoder.load_seconds();
      summary["weights_bytes"] = encoder.weights_bytes();
      summary["load_gb_per_second"] = double(encoder.weights_bytes()) / 1e9 / encoder.load_seconds();
      summary["resident_encode_ms"] = {{"median", median_ms}, {"min", repeat_ms.front()}, {"max", repeat_ms.back()},
                                       {"tokens", items[0].ids.size()}, {"runs", repeat}};
    }
    fmt::print("{}\n", summary.dump(2));
  } else if (!quiet) {
    fmt::print(stderr, "wrote {} ({} prompt(s), {})\n", many ? output : written[0], items.size(),
               format_seconds(seconds));
    if (repeat > 0)
      fmt::print(stderr, "load {} ({:.2f} GB, {:.2f} GB/s); resident encode of {} tokens: median {:.2f} ms of {}\n",
                 format_seconds(encoder.load_seconds()), double(encoder.weights_bytes()) / 1e9,
                 double(encoder.weights_bytes()) / 1e9 / encoder.load_seconds(), items[0].ids.size(), median_ms,
                 repeat);
  }
  return 0;
}

}  // namespace lf::cmd
