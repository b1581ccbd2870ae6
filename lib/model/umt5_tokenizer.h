#pragma once
// umT5's tokenizer as Wan calls it (wan/modules/tokenizers.py HuggingfaceTokenizer, clean='whitespace'): the
// prompt is cleaned, split into SentencePiece ids by the official spiece.model (Debian's libsentencepiece), EOS
// appended, truncated to max_tokens with the EOS kept (as Hugging Face truncates before adding special tokens).
// Padding is not materialised: the encoder computes the real tokens only, and the mask is "the first ids.size()".
#include <memory>
#include <string>
#include <vector>

namespace lf {

class SentencePieceModel;

// Wan's cleaning without ftfy's mojibake repair (docs/text-encoder.md lists what is and is not reproduced): curly
// quotes to ASCII (ftfy uncurl_quotes), HTML character references unescaped twice (Python html.unescape rules: the
// HTML5 named references, numeric ones with their replacements), surrounding whitespace stripped and runs of
// Unicode whitespace collapsed to one space. Errors name the byte offset of invalid UTF-8.
std::string clean_prompt_text(const std::string& text);
// One pass of Python's html.unescape on UTF-8 text.
std::string html_unescape(const std::string& text);

struct Umt5Tokens {
  std::vector<int64_t> ids;        // the pieces, then EOS; at most max_tokens
  int64_t untruncated_count = 0;   // ids the prompt would need without truncation (EOS included)
  int64_t unknown_count = 0;       // pieces mapped to <unk>
  bool truncated() const { return untruncated_count > int64_t(ids.size()); }
};

class Umt5Tokenizer {
 public:
  // Opens a SentencePiece model (spiece.model); the error names the file and says what is wrong with it.
  Umt5Tokenizer(const std::string& model_path, int64_t max_tokens, int64_t eos_id);
  ~Umt5Tokenizer();
  Umt5Tokenizer(Umt5Tokenizer&&) noexcept;
  Umt5Tokenizer& operator=(Umt5Tokenizer&&) noexcept;

  // Cleans and tokenizes; an empty prompt (nothing left after cleaning) is an error.
  Umt5Tokens tokenize(const std::string& prompt) const;
  int64_t vocab_size() const;
  const std::string& path() const { return path_; }

 private:
  std::unique_ptr<SentencePieceModel> processor_;
  std::string path_;
  int64_t max_tokens_, eos_id_;
};

}  // namespace lf
