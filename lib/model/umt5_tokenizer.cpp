#include "model/umt5_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string_view>

#include "core/error.h"
#include "model/umt5_sentencepiece.h"

namespace lf {

namespace {

struct NamedReference {
  std::string_view name, value;
};
constexpr NamedReference kNamedReferences[] = {
#include "model/umt5_html_entities.inc"
};

// Decodes the code point at text[*pos] and advances; fails on invalid UTF-8 (Python could not hold such a prompt).
char32_t next_code_point(const std::string& text, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(*pos);
  int length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : (lead >> 3) == 0x1e ? 4 : 0;
  LF_CHECK(length > 0 && *pos + size_t(length) <= text.size(), "prompt is not valid UTF-8 (byte {})", *pos);
  char32_t code = length == 1 ? lead : lead & (0x7f >> length);
  for (int i = 1; i < length; ++i) {
    LF_CHECK((byte(*pos + size_t(i)) & 0xc0) == 0x80, "prompt is not valid UTF-8 (byte {})", *pos + size_t(i));
    code = (code << 6) | (byte(*pos + size_t(i)) & 0x3f);
  }
  static constexpr char32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  LF_CHECK(code >= kMinimum[length] && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff),
           "prompt is not valid UTF-8 (byte {})", *pos);
  *pos += size_t(length);
  return code;
}

void append_utf8(std::string& out, char32_t code) {
  if (code < 0x80) {
    out += char(code);
  } else if (code < 0x800) {
    out += char(0xc0 | (code >> 6)), out += char(0x80 | (code & 0x3f));
  } else if (code < 0x10000) {
    out += char(0xe0 | (code >> 12)), out += char(0x80 | ((code >> 6) & 0x3f)), out += char(0x80 | (code & 0x3f));
  } else {
    out += char(0xf0 | (code >> 18)), out += char(0x80 | ((code >> 12) & 0x3f));
    out += char(0x80 | ((code >> 6) & 0x3f)), out += char(0x80 | (code & 0x3f));
  }
}

// Unicode White_Space: what `regex`'s \s matches in Wan's whitespace_clean.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
         c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Python's html.unescape for numeric references: the HTML5 replacements of invalid numbers.
std::string numeric_reference(uint32_t number, bool overflow) {
  // Windows-1252 for 0x80..0x9f (0 where the HTML5 table has no entry), as html._invalid_charrefs.
  static constexpr char32_t kWindows1252[32] = {
      0x20ac, 0x81,   0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d,   0x017d, 0x8f,
      0x90,   0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d,   0x017e, 0x0178};
  std::string out;
  if (number == 0 || overflow || number > 0x10ffff || (number >= 0xd800 && number <= 0xdfff)) {
    append_utf8(out, 0xfffd);
    return out;
  }
  if (number == 0x0d) return "\r";
  if (number >= 0x80 && number <= 0x9f) {
    append_utf8(out, kWindows1252[number - 0x80]);
    return out;
  }
  // html._invalid_codepoints: C0/C1 controls (but tab, LF, FF, CR), 0xb, noncharacters -> dropped.
  const bool invalid = (number >= 0x1 && number <= 0x8) || number == 0xb || (number >= 0xe && number <= 0x1f) ||
                       (number >= 0x7f && number <= 0x9f) || (number >= 0xfdd0 && number <= 0xfdef) ||
                       (number & 0xfffe) == 0xfffe;
  if (!invalid) append_utf8(out, number);
  return out;
}

const NamedReference* find_reference(std::string_view name) {
  const auto* end = std::end(kNamedReferences);
  const auto* found = std::lower_bound(std::begin(kNamedReferences), end, name,
                                       [](const NamedReference& entry, std::string_view key) { return entry.name < key; });
  return found != end && found->name == name ? found : nullptr;
}

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string html_unescape(const std::string& text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&') {
      out += text[i++];
      continue;
    }
    // Python's pattern: &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
    size_t j = i + 1;
    if (j < text.size() && text[j] == '#') {
      const bool hex = j + 1 < text.size() && (text[j + 1] == 'x' || text[j + 1] == 'X');
      size_t digits = j + (hex ? 2 : 1), end = digits;
      while (end < text.size() && (hex ? is_hex(text[end]) : is_digit(text[end]))) ++end;
      if (end == digits) {
        out += text[i++];
        continue;
      }
      uint64_t number = 0;
      bool overflow = false;
      for (size_t k = digits; k < end; ++k) {
        number = number * (hex ? 16 : 10) + uint64_t(is_digit(text[k]) ? text[k] - '0' : std::tolower(text[k]) - 'a' + 10);
        overflow = overflow || number > 0x10ffff;
      }
      out += numeric_reference(uint32_t(std::min<uint64_t>(number, 0x110000)), overflow);
      i = end < text.size() && text[end] == ';' ? end + 1 : end;
      continue;
    }
    size_t end = j;
    while (end < text.size() && end - j < 32 && std::string_view("\t\n\f <&#;").find(text[end]) == std::string_view::npos)
      ++end;
    if (end == j) {
      out += text[i++];
      continue;
    }
    if (end < text.size() && text[end] == ';') ++end;
    const std::string_view name(text.data() + j, end - j);
    if (const NamedReference* reference = find_reference(name)) {
      out += reference->value;
    } else {
      // The longest prefix that is a name (those without ';' are the legacy ones), the rest kept as text.
      size_t length = name.size() - 1;
      for (; length > 1; --length)
        if (const NamedReference* prefix = find_reference(name.substr(0, length))) {
          out += prefix->value;
          out += name.substr(length);
          break;
        }
      if (length <= 1) {
        out += '&';
        out += name;
      }
    }
    i = end;
  }
  return out;
}

std::string clean_prompt_text(const std::string& text) {
  // ftfy's uncurl_quotes first (fix_text runs before the unescaping).
  std::string uncurled;
  for (size_t pos = 0; pos < text.size();) {
    const char32_t c = next_code_point(text, &pos);
    if (c == 0x02bc || (c >= 0x2018 && c <= 0x201b)) uncurled += '\'';
    else if (c >= 0x201c && c <= 0x201f) uncurled += '"';
    else append_utf8(uncurled, c);
  }
  const std::string unescaped = html_unescape(html_unescape(uncurled));
  // Collapse every run of whitespace to one space and drop it at both ends (strip, sub, strip).
  std::string out;
  bool pending_space = false;
  for (size_t pos = 0; pos < unescaped.size();) {
    const size_t start = pos;
    const char32_t c = next_code_point(unescaped, &pos);
    if (is_white_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out.append(unescaped, start, pos - start);
  }
  return out;
}

Umt5Tokenizer::Umt5Tokenizer(const std::string& model_path, int64_t max_tokens, int64_t eos_id)
    : path_(model_path), max_tokens_(max_tokens), eos_id_(eos_id) {
  std::error_code ignored;
  LF_CHECK(std::filesystem::is_regular_file(model_path, ignored), "tokenizer '{}': no such file (expected a "
           "SentencePiece model, spiece.model)", model_path);
  processor_ = std::make_unique<SentencePieceModel>(model_path);
  LF_CHECK(eos_id_ < processor_->piece_size() && processor_->is_control(int(eos_id_)),
           "tokenizer '{}': id {} is not a control piece (EOS) of this model", model_path, eos_id_);
}

Umt5Tokenizer::~Umt5Tokenizer() = default;
Umt5Tokenizer::Umt5Tokenizer(Umt5Tokenizer&&) noexcept = default;
Umt5Tokenizer& Umt5Tokenizer::operator=(Umt5Tokenizer&&) noexcept = default;

int64_t Umt5Tokenizer::vocab_size() const { return processor_->piece_size(); }

Umt5Tokens Umt5Tokenizer::tokenize(const std::string& prompt) const {
  const std::string cleaned = clean_prompt_text(prompt);
  LF_CHECK(!cleaned.empty(), "empty prompt (nothing left after cleaning whitespace)");
  const std::vector<int> pieces = processor_->encode(cleaned);
  Umt5Tokens tokens;
  tokens.untruncated_count = int64_t(pieces.size()) + 1;
  const size_t kept = std::min(pieces.size(), size_t(max_tokens_ - 1));
  for (size_t i = 0; i < kept; ++i) {
    tokens.ids.push_back(pieces[i]);
    tokens.unknown_count += processor_->is_unknown(pieces[i]) ? 1 : 0;
  }
  tokens.ids.push_back(eos_id_);
  return tokens;
}

}  // namespace lf
