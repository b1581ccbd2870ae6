#include "model/umt5_text_encoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/official_files.h"
#include "model/umt5_encoder.h"

namespace lf {

namespace {

constexpr const char* kRandomWeights = "random";

bool is_random(const std::string& weights) { return weights == kRandomWeights || weights.rfind("random:", 0) == 0; }

uint64_t random_seed(const std::string& weights) {
  if (weights == kRandomWeights) return 0;
  const std::string digits = weights.substr(std::strlen("random:"));
  char* end = nullptr;
  const unsigned long long seed = std::strtoull(digits.c_str(), &end, 10);
  LF_CHECK(!digits.empty() && end && *end == '\0', "--t5-weights '{}': expected random or random:SEED", weights);
  return seed;
}

// FNV-1a: a file name for a cache entry; the entry's metadata holds the full key, so a collision is a miss.
uint64_t fnv1a(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

// "path|bytes|mtime" of a file, the identity the cache trusts (hashing 11 GB per run would cost more than encoding).
std::string file_identity(const std::string& path) {
  std::error_code error;
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(path, error);
  const auto size = std::filesystem::file_size(path, error);
  const auto mtime = std::filesystem::last_write_time(path, error).time_since_epoch().count();
  return fmt::format("{}|{}|{}", error ? path : canonical.string(), size, mtime);
}

}  // namespace

Umt5TextEncoder::Umt5TextEncoder(Umt5Config config, Umt5EncoderOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  if (options_.text_len == 0) options_.text_len = config_.max_tokens;
  LF_CHECK(options_.text_len > 0, "umT5: text_len {} is not positive",
           options_.text_len);
}

Umt5TextEncoder::~Umt5TextEncoder() = default;

const Umt5Tokenizer& Umt5TextEncoder::tokenizer() const {
  if (!tokenizer_) {
    require_model_file(options_.tokenizer, "umT5 tokenizer", kOfficialTokenizer, "--tokenizer");
    tokenizer_ = std::make_unique<Umt5Tokenizer>(options_.tokenizer, config_.max_tokens, config_.eos_id);
    LF_CHECK(tokenizer_->vocab_size() <= config_.vocab, "tokenizer '{}': {} pieces, more than the encoder's vocab of {} "
             "(config '{}')", options_.tokenizer, tokenizer_->vocab_size(), config_.vocab, config_.source);
  }
  return *tokenizer_;
}

Umt5Encoder& Umt5TextEncoder::encoder() {
  if (encoder_) return *encoder_;
  Umt5Weights weights;
  if (is_random(options_.weights)) {
    weights = random_umt5_weights(config_, random_seed(options_.weights));
  } else {
    require_model_file(options_.weights, "umT5 weights", kOfficialT5Weights, "--t5-weights");
    checkpoint_ = Checkpoint::open(options_.weights);
    weights = load_umt5_weights(config_, *checkpoint_);
  }
  encoder_ = std::make_unique<Umt5Encoder>(config_, std::move(weights), options_.device);
  if (keep_loaded_) encoder_->make_resident();
  return *encoder_;
}

Umt5Tokens Umt5TextEncoder::tokenize(const std::string& prompt) const { return tokenizer().tokenize(prompt); }

std::vector<std::string> Umt5TextEncoder::notes(const std::string& prompt) const {
  const Umt5Tokens tokens = tokenize(prompt);
  std::vector<std::string> notes;
  if (tokens.truncated())
    notes.push_back(fmt::format("the prompt is {} tokens; umT5 keeps the first {} (EOS included)",
                                tokens.untruncated_count, config_.max_tokens));
  if (tokens.unknown_count > 0)
    notes.push_back(fmt::format("{} piece(s) of the prompt are unknown to the tokenizer (<unk>)", tokens.unknown_count));
  return notes;
}

Tensor Umt5TextEncoder::encode_ids(const std::vector<int64_t>& ids) {
  Tensor out = encoder().encode_ids(ids);
  if (!keep_loaded_) {
    encoder_.reset();
    checkpoint_.reset();
  }
  return out;
}

std::string Umt5TextEncoder::identity() const {
  const std::string weights = is_random(options_.weights) ? options_.weights : file_identity(options_.weights);
  return fmt::format("umt5 {} vocab={} dim={} heads={}x{} ffn={} layers={} buckets={}/{} shared={} eps={} | weights "
                     "{} | tokenizer {} | device {}",
                     config_.name, config_.vocab, config_.dim, config_.heads, config_.head_dim, config_.ffn_dim,
                     config_.layers, config_.buckets, config_.max_distance, config_.shared_position_bias, config_.eps,
                     weights, file_identity(options_.tokenizer), device_name(options_.device));
}

std::string Umt5TextEncoder::cache_directory() const {
  if (options_.cache == "off") return "";
  if (!options_.cache.empty()) return options_.cache;
  if (const char* setting = std::getenv("LF_TEXT_CACHE"); setting && *setting)
    return std::string(setting) == "off" ? "" : setting;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (std::filesystem::path(xdg) / "lightforce" / "text-embeddings").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (std::filesystem::path(home) / ".cache" / "lightforce" / "text-embeddings").string();
  return "";
}

Tensor Umt5TextEncoder::encode_unpadded(const std::string& prompt, bool* cache_hit) {
  const Umt5Tokens tokens = tokenize(prompt);
  if (cache_hit) *cache_hit = false;
  const std::string directory = cache_directory();
  std::string key, entry_path;
  if (!directory.empty()) {
    key = identity() + "\n" + clean_prompt_text(prompt);
    entry_path = (std::filesystem::path(directory) / fmt::format("{:016x}.safetensors", fnv1a(key))).string();
    std::error_code ignored;
    if (std::filesystem::is_regular_file(entry_path, ignored)) {
      try {
        const auto cached = Checkpoint::open(entry_path);
        const auto metadata = cached->metadata();
        const auto stored_key = metadata.find("key");
        if (stored_key != metadata.end() && stored_key->second == key && cached->contains("context")) {
          const Tensor context = cached->view("context").to(DType::F32);  // a copy: the mapping closes
          if (context.rank() == 2 && context.dim(0) == int64_t(tokens.ids.size()) && context.dim(1) == config_.dim) {
            if (cache_hit) *cache_hit = true;
            return context;
          }
        }
      } catch (const Error&) {
        // A damaged entry is recomputed and rewritten.
      }
    }
  }
  Tensor context = encode_ids(tokens.ids);
  if (!directory.empty()) {
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    try {
      write_safetensors(entry_path, {{"context", context}}, {{"key", key}});
    } catch (const Error&) {
      // The cache is an optimisation: an unwritable directory costs the next run an encode, nothing else.
    }
  }
  return context;
}

Tensor Umt5TextEncoder::encode(const std::string& prompt) {
  const Tensor context = encode_unpadded(prompt);
  LF_CHECK(context.dim(0) <= options_.text_len, "umT5: {} tokens do not fit text_len {}", context.dim(0),
           options_.text_len);
  Tensor padded = Tensor::zeros({options_.text_len, config_.dim});
  std::memcpy(padded.raw(), context.raw(), context.nbytes());
  return padded;
}

namespace {

std::unique_ptr<TextEncoder> make_umt5(const TextEncoderSources& sources, const char* config_name) {
  Umt5Config config = load_umt5_config(config_name);
  const ModelConfig& model = *sources.model;
  // A DiT with a shorter context than the tokenizer's length (small test models) truncates at its text_len.
  config.max_tokens = std::min(config.max_tokens, model.text_len);
  LF_CHECK(model.text_dim == config.dim, "model '{}': text_dim {} does not match the {} encoder's width {}", model.name,
           model.text_dim, config_name, config.dim);
  Umt5EncoderOptions options;
  options.weights = sources.weights;
  options.tokenizer = sources.tokenizer;
  options.device = sources.device;
  options.text_len = model.text_len;
  return std::make_unique<Umt5TextEncoder>(std::move(config), std::move(options));
}

}  // namespace

std::unique_ptr<TextEncoder> make_umt5_xxl_encoder(const TextEncoderSources& sources) {
  return make_umt5(sources, "umt5-xxl");
}

std::unique_ptr<TextEncoder> make_umt5_tiny_encoder(const TextEncoderSources& sources) {
  return make_umt5(sources, "umt5-tiny");
}

}  // namespace lf
