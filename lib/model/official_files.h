#pragma once
// The official Wan2.1-T2V-1.3B folder: the files the engine needs besides the DiT, found by their official names
// under --model-dir, each overridable by its own flag. Paths are resolved here once; the parts that read them
// (the umT5 encoder, the VAE decoder) report a missing file with the flags that name it.
#include <string>

namespace lf {

// Official names inside the model folder.
inline constexpr const char* kOfficialT5Weights = "models_t5_umt5-xxl-enc-bf16.pth";
inline constexpr const char* kOfficialTokenizer = "google/umt5-xxl/spiece.model";
inline constexpr const char* kOfficialVae = "Wan2.1_VAE.pth";

struct OfficialFileFlags {
  std::string model_dir;   // --model-dir
  std::string t5_weights;  // --t5-weights (a file, or "random" for random weights of the encoder's size)
  std::string tokenizer;   // --tokenizer
  std::string vae;         // the VAE decoder's own flag, where it has one
};

struct OfficialModelFiles {
  std::string t5_weights, tokenizer, vae;  // "" when neither the flag nor --model-dir gives one
};

// A flag wins; otherwise <model_dir>/<official name> (returned even when absent, so that the error names the full
// path the user can check). --model-dir that is not a directory is an error.
OfficialModelFiles resolve_official_files(const OfficialFileFlags& flags);

// Fails unless `path` names an existing file: the error says which file `what` is and which flags set it.
void require_model_file(const std::string& path, const char* what, const char* official_name, const char* flag);

}  // namespace lf
