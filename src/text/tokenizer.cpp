#include "text/tokenizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <variant>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"
#include "formats/gguf.h"
#include "text/bpe.h"
#include "text/pretokenizer.h"
#include "text/sentencepiece_bpe.h"
#include "text/unicode.h"

namespace kindred::text {

namespace {

// Far above any real vocabulary (gpt-oss has ~201k); stops a corrupt id from sizing tables.
constexpr std::int64_t kMaxVocabulary = 1 << 24;
// Unused ids tolerated beyond one per given token, so that small vocabularies may reserve ids too.
constexpr std::uint64_t kUnusedIdSlack = 1024;
// SentencePiece's "▁" (U+2581), which stands for a space in its pieces.
constexpr std::string_view kSpacePiece = "\xE2\x96\x81";

struct AddedToken {
    std::string content;
    std::int32_t id = 0;
    bool special = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = false;
    bool single_word = false;
};

// Leftmost-longest search for added tokens (what HF's Aho-Corasick does); the handful of
// tokens is bucketed by first byte, longest first, so most bytes cost one table probe.
class AddedTokenMatcher {
public:
    void add(const AddedToken* token) {
        const auto first = static_cast<unsigned char>(token->content[0]);
        auto& bucket = by_first_byte_[first];
        bucket.push_back(token);
        std::stable_sort(bucket.begin(), bucket.end(),
                         [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
    }
    // The leftmost match starting in [from, end), longest there, among the tokens `accept(token,
    // begin, end)` allows at that place; nullptr when none.
    template <typename Accept>
    const AddedToken* find(std::string_view text, std::size_t from, std::size_t end, std::size_t& at,
                           const Accept& accept) const {
        for (std::size_t pos = from; pos < end; ++pos) {
            for (const AddedToken* token : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
                const std::size_t size = token->content.size();
                if (size <= end - pos && text.compare(pos, size, token->content) == 0 && accept(*token, pos, pos + size)) {
                    at = pos;
                    return token;
                }
            }
        }
        return nullptr;
    }

private:
    std::array<std::vector<const AddedToken*>, 256> by_first_byte_;
};

char32_t last_code_point(std::string_view text) {
    std::size_t pos = text.size() - 1;
    while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80 && text.size() - pos < 4) {
        --pos;
    }
    const std::size_t length = utf8_length_at(text, pos);
    return pos + length == text.size() ? utf8_decode_at(text, pos, length) : 0xFFFD;
}

}  // namespace

// Where control (special) tokens may match: everywhere (HF's encode), nowhere (HF's
// split_special_tokens), or only inside given byte ranges of the input (a rendered chat's markup).
// A control token refused at some place is no candidate there, exactly as if it were not in the
// vocabulary, so other added tokens and plain text take its bytes.
struct SpecialScope {
    bool everywhere = true;
    std::span<const ByteRange> ranges;  // sorted, disjoint; used when !everywhere

    bool allows(std::size_t begin, std::size_t end) const {
        if (everywhere) return true;
        // The last range starting at or before `begin` is the only one that can hold [begin, end).
        const auto after = std::upper_bound(ranges.begin(), ranges.end(), begin,
                                            [](std::size_t b, const ByteRange& r) { return b < r.first; });
        return after != ranges.begin() && end <= std::prev(after)->second;
    }
};

struct Tokenizer::Impl {
    // Per-call state of one encode: the BPE session (word cache) and reusable buffers.
    struct EncodeState {
        explicit EncodeState(const BpeModel* model) {
            if (model != nullptr) session.emplace(*model);
        }
        std::optional<BpeModel::Session> session;  // byte-level BPE only
        PreTokenizer::Scratch scratch;
        std::vector<ByteRange> words;
        std::vector<std::uint32_t> lengths;  // SentencePiece: bytes per id
        std::string normalized;              // SentencePiece: the text with "▁" spaces
        std::vector<ByteRange> origin;       // SentencePiece: per normalized byte, the input bytes it stands for
    };
    // Where a SentencePiece-style tokenizer puts a "▁" before a stretch of text (between added
    // tokens): never (Gemma), always (HF's Prepend normalizer, Llama 2), unless it starts with a
    // space (HF's Metaspace pre-tokenizer, prepend_scheme "always"), or only at the input's start
    // and unless it starts with a space ("first").
    enum class Prepend { Never, Always, UnlessSpace, FirstUnlessSpace };

    std::string source;
    std::vector<std::string> texts;                  // stored text per id
    std::string bytes_arena;                         // decoded bytes of every id, back to back
    std::vector<std::uint32_t> bytes_offsets;        // vocab_size + 1 entries into bytes_arena
    std::vector<std::uint8_t> special;
    BpeModel::WordMap text_to_id;                    // stored text -> id; added tokens win
    std::vector<AddedToken> added;
    AddedTokenMatcher raw_matcher;                   // added tokens matched on the raw text
    AddedTokenMatcher normalized_matcher;            // added tokens matched after normalization
    bool has_normalized_tokens = false;
    std::optional<NormalForm> normal_form;
    std::string normalizer_name = "none";
    PreTokenizer pre_tokenizer;
    std::string pre_tokenizer_name;
    std::unique_ptr<BpeModel> bpe;                   // byte-level BPE (tokenizer.ggml.model "gpt2", tokenizer.json)
    std::unique_ptr<SentencePieceBpe> sentencepiece; // or SentencePiece BPE (tokenizer.ggml.model "llama"; byte_fallback)
    bool spaces_as_pieces = false;                   // tokenizer.json: a Replace or Metaspace writes spaces as "▁"
    Prepend prepend = Prepend::Never;
    std::size_t decode_strip = 0;                    // leading spaces decode removes (HF's Strip decoder)
    std::optional<std::int32_t> bos;
    std::optional<std::int32_t> eos;
    std::string chat_template;

    std::string_view bytes_of(std::int32_t id) const {
        const auto index = static_cast<std::size_t>(id);
        return std::string_view(bytes_arena).substr(bytes_offsets[index], bytes_offsets[index + 1] - bytes_offsets[index]);
    }
    void check_id(std::int32_t id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= texts.size()) {
            fail("token id {} is outside the vocabulary of {} tokens ({})", id, texts.size(), source);
        }
    }

    void encode_text(std::string_view text, const SpecialScope& specials, EncodeState& state, Encoding& out) const;
    void encode_plain(std::string_view text, std::size_t begin, std::size_t end, const SpecialScope& specials,
                      EncodeState& state, Encoding& out) const;
    void encode_words(std::string_view text, std::size_t begin, std::size_t end, const NormalizedText* map,
                      EncodeState& state, Encoding& out) const;
    void encode_pieces(std::string_view text, std::size_t begin, std::size_t end, EncodeState& state,
                       Encoding& out) const;
};

namespace {

// Everything both loaders feed in; build() validates it and derives the tables.
struct Spec {
    std::string source;
    std::vector<std::pair<std::string, std::int32_t>> vocab;   // model vocabulary
    std::vector<std::pair<std::string, std::string>> merges;   // in rank order
    std::vector<AddedToken> added;
    bool ignore_merges = false;
};

// A merge written as one string, "left right" (GGUF and older tokenizer.json files).
std::pair<std::string, std::string> split_merge(const std::string& text, const std::string& where) {
    const std::size_t space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        fail("{} '{}' is not two tokens separated by one space", where, text);
    }
    return {text.substr(0, space), text.substr(space + 1)};
}

// The id tables both tokenizer kinds share: texts, special flags, text -> id (added tokens win).
// Returns, per id, whether an added token holds it; `present` tells which ids some entry names.
std::vector<std::uint8_t> fill_vocabulary(const Spec& spec, Tokenizer::Impl& impl, BpeModel::WordMap& model_ids,
                                          std::vector<std::uint8_t>& present) {
    impl.source = spec.source;
    std::int64_t size = 0;
    for (const auto& [text, id] : spec.vocab) size = std::max<std::int64_t>(size, std::int64_t{id} + 1);
    for (const AddedToken& token : spec.added) size = std::max<std::int64_t>(size, std::int64_t{token.id} + 1);
    if (size > kMaxVocabulary) {
        fail("{}: token id {} is implausibly large (limit {})", spec.source, size - 1, kMaxVocabulary);
    }
    // Every id up to the largest gets a table row, so a few entries with huge ids would make a
    // tiny file allocate gigabytes; real vocabularies leave at most a few reserved ids unused.
    const std::size_t entries = spec.vocab.size() + spec.added.size();
    if (static_cast<std::uint64_t>(size) > 2 * entries + kUnusedIdSlack) {
        fail("{}: token id {} is far beyond the {} tokens given (ids must be nearly contiguous)", spec.source,
             size - 1, entries);
    }
    const auto count = static_cast<std::size_t>(size);
    impl.texts.assign(count, {});
    present.assign(count, 0);  // ids some entry names; the rest stay unused
    impl.special.assign(count, 0);

    model_ids.reserve(spec.vocab.size());
    for (auto& [text, id] : spec.vocab) {
        if (id < 0) fail("{}: token '{}' has negative id {}", spec.source, text, id);
        const auto index = static_cast<std::size_t>(id);
        if (present[index] != 0) fail("{}: id {} is given to both '{}' and '{}'", spec.source, id, impl.texts[index], text);
        present[index] = 1;
        impl.texts[index] = text;
        model_ids.emplace(text, id);
    }
    std::vector<std::uint8_t> is_added(count, 0);
    for (const AddedToken& token : spec.added) {
        if (token.id < 0) fail("{}: added token '{}' has negative id {}", spec.source, token.content, token.id);
        if (token.content.empty()) fail("{}: added token {} has empty content", spec.source, token.id);
        const auto index = static_cast<std::size_t>(token.id);
        if (present[index] != 0 && impl.texts[index] != token.content) {
            fail("{}: id {} is given to both '{}' and added token '{}'", spec.source, token.id, impl.texts[index], token.content);
        }
        present[index] = 1;
        impl.texts[index] = token.content;
        impl.special[index] = token.special ? 1 : 0;
        is_added[index] = 1;
    }
    impl.text_to_id = model_ids;
    for (const AddedToken& token : spec.added) impl.text_to_id[token.content] = token.id;
    return is_added;
}

// Added tokens go to the matcher of the text they are found in: HF matches normalized tokens after
// the normalizer has run, the others before it.
void register_added(std::vector<AddedToken> added, Tokenizer::Impl& impl) {
    impl.added = std::move(added);
    for (const AddedToken& token : impl.added) {
        (token.normalized ? impl.normalized_matcher : impl.raw_matcher).add(&token);
        impl.has_normalized_tokens = impl.has_normalized_tokens || token.normalized;
    }
}

// The spec's merges as pairs of model ids ranked by their order.
MergeTable merge_table(const Spec& spec, const BpeModel::WordMap& model_ids) {
    MergeTable merges;
    merges.reserve(spec.merges.size());
    std::string joined;
    for (std::size_t rank = 0; rank < spec.merges.size(); ++rank) {
        const auto& [left, right] = spec.merges[rank];
        const auto a = model_ids.find(left);
        const auto b = model_ids.find(right);
        joined = left;
        joined += right;
        const auto merged = model_ids.find(joined);
        if (a == model_ids.end() || b == model_ids.end() || merged == model_ids.end()) {
            fail("{}: merge {} ('{}' '{}') names a token missing from the vocabulary", spec.source, rank, left, right);
        }
        merges.insert(a->second, b->second, static_cast<std::int32_t>(rank), merged->second);
    }
    return merges;
}

// The byte a SentencePiece byte piece stands for: "<0x0A>" -> 10; -1 when the text is not of that form.
int byte_piece_value(std::string_view text) {
    const auto hex = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    if (text.size() != 6 || !text.starts_with("<0x") || text[5] != '>') return -1;
    const int high = hex(text[3]), low = hex(text[4]);
    return high < 0 || low < 0 ? -1 : high * 16 + low;
}

// Decoded bytes of a SentencePiece vocabulary: a byte piece (is_byte) is its byte, "▁" a space;
// added tokens are literal text.
void fill_piece_bytes(Tokenizer::Impl& impl, const std::vector<std::uint8_t>& is_added,
                      const std::vector<std::uint8_t>& is_byte) {
    impl.bytes_offsets.assign(impl.texts.size() + 1, 0);
    for (std::size_t id = 0; id < impl.texts.size(); ++id) {
        const std::string& text = impl.texts[id];
        if (is_byte[id] != 0) {
            impl.bytes_arena.push_back(static_cast<char>(byte_piece_value(text)));
        } else if (is_added[id] != 0) {
            impl.bytes_arena += text;
        } else {
            for (std::size_t pos = 0; pos < text.size();) {
                const bool space = text.compare(pos, kSpacePiece.size(), kSpacePiece) == 0;
                impl.bytes_arena += space ? std::string_view(" ") : std::string_view(text).substr(pos, 1);
                pos += space ? kSpacePiece.size() : 1;
            }
        }
        impl.bytes_offsets[id + 1] = static_cast<std::uint32_t>(impl.bytes_arena.size());
    }
}

// tokenizer.json's BPE with byte_fallback (SentencePiece converted: Gemma, Llama 2, Mistral): the
// merge list ranks joins of characters, <0xXX> pieces stand for bytes no character covers.
std::shared_ptr<Tokenizer::Impl> build_byte_fallback(Spec spec, std::unique_ptr<Tokenizer::Impl> impl) {
    BpeModel::WordMap model_ids;
    std::vector<std::uint8_t> present;
    const std::vector<std::uint8_t> is_added = fill_vocabulary(spec, *impl, model_ids, present);
    std::array<std::int32_t, 256> byte_ids;
    for (int b = 0; b < 256; ++b) {
        const auto found = model_ids.find(fmt::format("<0x{:02X}>", b));
        if (found == model_ids.end()) {
            fail("{}: model.vocab has no byte piece <0x{:02X}>; byte_fallback needs all 256", spec.source, b);
        }
        byte_ids[static_cast<std::size_t>(b)] = found->second;
    }
    // HF's ByteFallback decoder reads every token spelled <0xXX> as its byte.
    std::vector<std::uint8_t> is_byte(impl->texts.size(), 0);
    for (std::size_t id = 0; id < is_byte.size(); ++id)
        is_byte[id] = is_added[id] == 0 && byte_piece_value(impl->texts[id]) >= 0 ? 1 : 0;
    fill_piece_bytes(*impl, is_added, is_byte);
    MergeTable merges = merge_table(spec, model_ids);
    impl->sentencepiece = std::make_unique<SentencePieceBpe>(std::move(model_ids), std::move(merges), byte_ids,
                                                             spec.ignore_merges);
    register_added(std::move(spec.added), *impl);
    return std::shared_ptr<Tokenizer::Impl>(std::move(impl));
}

std::shared_ptr<Tokenizer::Impl> build(Spec spec, std::unique_ptr<Tokenizer::Impl> impl) {
    BpeModel::WordMap model_ids;
    std::vector<std::uint8_t> present;
    const std::vector<std::uint8_t> is_added = fill_vocabulary(spec, *impl, model_ids, present);
    const std::size_t count = impl->texts.size();

    // Decoded bytes: model tokens through GPT-2's byte table; added tokens are literal text.
    // A model token with a character outside the table decodes to its own UTF-8, as HF's
    // ByteLevel decoder does.
    const ByteLevelTable& table = byte_level_table();
    std::vector<std::uint32_t> lengths(count, 0);
    impl->bytes_offsets.assign(count + 1, 0);
    BpeModel::WordMap whole_words;
    std::string decoded;
    for (std::size_t id = 0; id < count; ++id) {
        const std::string& text = impl->texts[id];
        decoded.clear();
        if (is_added[id] != 0) {
            decoded = text;
        } else {
            for (std::size_t pos = 0; pos < text.size();) {
                const std::size_t length = utf8_length_at(text, pos);
                const int byte = table.byte_of(utf8_decode_at(text, pos, length));
                if (byte < 0 || (length == 1 && static_cast<unsigned char>(text[pos]) >= 0x80)) {
                    decoded = text;
                    break;
                }
                decoded.push_back(static_cast<char>(byte));
                pos += length;
            }
            if (spec.ignore_merges && present[id] != 0) whole_words.emplace(decoded, static_cast<std::int32_t>(id));
        }
        impl->bytes_arena += decoded;
        lengths[id] = static_cast<std::uint32_t>(decoded.size());
        impl->bytes_offsets[id + 1] = static_cast<std::uint32_t>(impl->bytes_arena.size());
    }

    std::vector<std::int32_t> byte_ids(256);
    for (int b = 0; b < 256; ++b) {
        std::string text;
        utf8_append(text, table.byte_to_code_point[static_cast<std::size_t>(b)]);
        const auto found = model_ids.find(text);
        byte_ids[static_cast<std::size_t>(b)] = found != model_ids.end() ? found->second : -1;
    }
    // A vocabulary missing a few rare bytes is still byte-level (SmolLM2's lacks 21); one
    // missing the letters is something else.
    for (const char c : std::string_view("etaoinsrhl")) {
        if (byte_ids[static_cast<unsigned char>(c)] < 0) {
            fail("{}: the vocabulary has no byte-level token for '{}'; not a byte-level BPE vocabulary", spec.source, c);
        }
    }

    impl->bpe = std::make_unique<BpeModel>(std::move(byte_ids), std::move(lengths), merge_table(spec, model_ids),
                                           spec.ignore_merges, std::move(whole_words));

    register_added(std::move(spec.added), *impl);
    return std::shared_ptr<Tokenizer::Impl>(std::move(impl));
}

// ---- HF tokenizer.json ----

// Real tokenizer.json files nest about 6 levels; the bound keeps the recursive Sequence walkers
// below off the end of the stack.
constexpr int kMaxJsonDepth = 32;
// gpt-oss's tokenizer.json, the largest known, is about 27 MB.
constexpr std::uintmax_t kMaxTokenizerJsonBytes = 256ull << 20;
constexpr std::uintmax_t kMaxTokenizerConfigBytes = 64ull << 20;

const nlohmann::json& member(const nlohmann::json& object, const char* key, const std::string& where) {
    if (!object.is_object() || !object.contains(key)) fail("{}: missing '{}'", where, key);
    return object[key];
}

std::string string_member(const nlohmann::json& object, const char* key, const std::string& where) {
    const nlohmann::json& value = member(object, key, where);
    if (!value.is_string()) fail("{}: '{}' must be a string", where, key);
    return value.get<std::string>();
}

bool bool_member(const nlohmann::json& object, const char* key, bool fallback, const std::string& where) {
    if (!object.contains(key) || object[key].is_null()) return fallback;
    if (!object[key].is_boolean()) fail("{}: '{}' must be true or false", where, key);
    return object[key].get<bool>();
}

void parse_normalizer(const nlohmann::json& node, const std::string& where, Tokenizer::Impl& impl) {
    if (node.is_null()) return;
    const std::string type = string_member(node, "type", where);
    if (type == "Sequence") {
        const nlohmann::json& list = member(node, "normalizers", where);
        if (!list.is_array()) fail("{}: 'normalizers' must be an array", where);
        for (std::size_t i = 0; i < list.size(); ++i) parse_normalizer(list[i], fmt::format("{}.normalizers[{}]", where, i), impl);
        return;
    }
    // SentencePiece-style files (byte_fallback BPE) spell their normalization as these two.
    if (type == "Replace") {
        const std::string pattern = string_member(member(node, "pattern", where), "String", where + ".pattern");
        const std::string content = string_member(node, "content", where);
        if (pattern != " " || content != kSpacePiece) {
            fail("{}: Replace '{}' -> '{}' is not supported (only ' ' -> U+2581, SentencePiece's spaces)", where,
                 pattern, content);
        }
        impl.spaces_as_pieces = true;
        return;
    }
    if (type == "Prepend") {
        const std::string prepend = string_member(node, "prepend", where);
        if (prepend != kSpacePiece) fail("{}: Prepend '{}' is not supported (only U+2581)", where, prepend);
        impl.prepend = Tokenizer::Impl::Prepend::Always;
        return;
    }
    static const std::array<std::pair<const char*, NormalForm>, 4> forms{
        {{"NFC", NormalForm::NFC}, {"NFD", NormalForm::NFD}, {"NFKC", NormalForm::NFKC}, {"NFKD", NormalForm::NFKD}}};
    for (const auto& [name, form] : forms) {
        if (type == name) {
            if (impl.normal_form) fail("{}: more than one Unicode normalization form", where);
            impl.normal_form = form;
            impl.normalizer_name = name;
            return;
        }
    }
    fail("{}: unsupported normalizer type '{}' (supported: NFC, NFD, NFKC, NFKD, Sequence; Replace and Prepend of "
         "U+2581 with byte_fallback)",
         where, type);
}

// Escapes a literal for PCRE2 (HF's Split pattern {"String": ...}).
std::string quote_literal(const std::string& literal) {
    std::string result;
    for (const char c : literal) {
        if (std::string_view("\\^$.|?*+()[]{}/-").find(c) != std::string_view::npos) result.push_back('\\');
        result.push_back(c);
    }
    return result;
}

void parse_pre_tokenizer(const nlohmann::json& node, const std::string& where, Tokenizer::Impl& impl, bool& byte_level) {
    const std::string type = string_member(node, "type", where);
    if (type == "Sequence") {
        const nlohmann::json& list = member(node, "pretokenizers", where);
        if (!list.is_array()) fail("{}: 'pretokenizers' must be an array", where);
        for (std::size_t i = 0; i < list.size(); ++i) {
            parse_pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", where, i), impl, byte_level);
        }
    } else if (type == "Split") {
        const nlohmann::json& pattern = member(node, "pattern", where);
        std::string regex;
        if (pattern.contains("Regex")) {
            regex = string_member(pattern, "Regex", where + ".pattern");
        } else if (pattern.contains("String")) {
            regex = quote_literal(string_member(pattern, "String", where + ".pattern"));
        } else {
            fail("{}.pattern: needs 'Regex' or 'String'", where);
        }
        const SplitBehavior behavior = parse_split_behavior(string_member(node, "behavior", where), where + ".behavior");
        impl.pre_tokenizer.add_split({Regex(regex, where), behavior, bool_member(node, "invert", false, where)});
    } else if (type == "ByteLevel") {
        if (bool_member(node, "add_prefix_space", false, where)) {
            fail("{}: ByteLevel add_prefix_space=true is not supported", where);
        }
        if (bool_member(node, "use_regex", true, where)) {
            impl.pre_tokenizer.add_split({Regex(gpt2_pattern(), where), SplitBehavior::Isolated, false});
        }
        byte_level = true;
    } else if (type == "Digits") {
        // Rust's char::is_numeric, which HF's Digits uses, is \p{N}.
        const bool individual = bool_member(node, "individual_digits", false, where);
        impl.pre_tokenizer.add_split({Regex(individual ? R"(\p{N})" : R"(\p{N}+)", where), SplitBehavior::Isolated, false});
    } else {
        fail("{}: unsupported pre-tokenizer type '{}' (supported: Sequence, Split, ByteLevel, Digits; with byte_fallback "
             "also Metaspace as the whole pre_tokenizer)",
             where, type);
    }
}

// The decoder of a byte_fallback BPE: Sequence of Replace U+2581 -> ' ', ByteFallback, Fuse and, last,
// Strip of leading spaces (the one a Prepend normalizer added). Sets impl.decode_strip.
void parse_sentencepiece_decoder(const nlohmann::json& root, const std::string& where, Tokenizer::Impl& impl) {
    const std::string expected = "a Sequence of Replace U+2581 -> ' ', ByteFallback, Fuse and Strip";
    if (!root.contains("decoder") || root["decoder"].is_null()) fail("{}: byte_fallback BPE needs a decoder ({})", where, expected);
    const nlohmann::json& decoder = root["decoder"];
    const std::string type = string_member(decoder, "type", where);
    if (type != "Sequence") fail("{}: unsupported decoder '{}' with byte_fallback BPE (expected {})", where, type, expected);
    const nlohmann::json& list = member(decoder, "decoders", where);
    if (!list.is_array()) fail("{}: 'decoders' must be an array", where);
    bool replace = false, byte_fallback = false, fused = false;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string step_where = fmt::format("{}.decoders[{}]", where, i);
        const std::string step = string_member(list[i], "type", step_where);
        if (impl.decode_strip > 0) fail("{}: {} after Strip is not supported (Strip must come last)", step_where, step);
        if (step == "Replace") {
            const std::string pattern = string_member(member(list[i], "pattern", step_where), "String", step_where + ".pattern");
            if (pattern != kSpacePiece || string_member(list[i], "content", step_where) != " ") {
                fail("{}: only Replace U+2581 -> ' ' is supported", step_where);
            }
            replace = true;
        } else if (step == "ByteFallback") {
            byte_fallback = true;
        } else if (step == "Fuse") {
            fused = true;
        } else if (step == "Strip") {
            const nlohmann::json& start = member(list[i], "start", step_where);
            const nlohmann::json& stop = member(list[i], "stop", step_where);
            if (string_member(list[i], "content", step_where) != " " || !start.is_number_unsigned() ||
                start.get<std::uint64_t>() > 8 || !stop.is_number_unsigned() || stop.get<std::uint64_t>() != 0 || !fused) {
                fail("{}: only Strip of up to 8 leading ' ' after Fuse (content ' ', stop 0) is supported", step_where);
            }
            impl.decode_strip = start.get<std::size_t>();
        } else {
            fail("{}: unsupported decoder step '{}' (expected {})", step_where, step, expected);
        }
    }
    if (!replace || !byte_fallback) fail("{}: the decoder needs Replace U+2581 -> ' ' and ByteFallback", where);
}

// The normalizer (parsed before), pre-tokenizer and decoder of a byte_fallback BPE (SentencePiece
// converted): spaces written as "▁" by a Replace normalizer or a Metaspace pre-tokenizer, perhaps
// with a "▁" prepended, then any splits of that text (Gemma's Split on ' ' finds none left).
void parse_sentencepiece_steps(const nlohmann::json& root, const std::string& where, const Spec& spec,
                               Tokenizer::Impl& impl) {
    using Prepend = Tokenizer::Impl::Prepend;
    if (impl.normal_form) fail("{}: normalizer: {} with byte_fallback BPE is not supported", where, impl.normalizer_name);
    for (std::size_t i = 0; i < spec.added.size(); ++i) {
        if (spec.added[i].normalized) {
            fail("{}: added_tokens[{}] '{}' is normalized; with byte_fallback BPE only added tokens with "
                 "'normalized': false are supported",
                 where, i, spec.added[i].content);
        }
    }
    const std::string pre_where = where + ": pre_tokenizer";
    const bool has_pre = root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null();
    if (has_pre && string_member(root["pre_tokenizer"], "type", pre_where) == "Metaspace") {
        const nlohmann::json& pre = root["pre_tokenizer"];
        if (impl.spaces_as_pieces || impl.prepend != Prepend::Never) {
            fail("{}: Metaspace after a normalizer that already writes U+2581 is not supported", pre_where);
        }
        if (string_member(pre, "replacement", pre_where) != kSpacePiece) fail("{}: 'replacement' must be U+2581", pre_where);
        const std::string scheme = pre.contains("prepend_scheme") ? string_member(pre, "prepend_scheme", pre_where)
                                   : bool_member(pre, "add_prefix_space", true, pre_where) ? "always"
                                                                                           : "never";
        if (scheme == "always") {
            impl.prepend = Prepend::UnlessSpace;
        } else if (scheme == "first") {
            impl.prepend = Prepend::FirstUnlessSpace;
        } else if (scheme != "never") {
            fail("{}: prepend_scheme '{}' is not always, first or never", pre_where, scheme);
        }
        impl.spaces_as_pieces = true;
        if (bool_member(pre, "split", true, pre_where)) {
            impl.pre_tokenizer.add_split({Regex(std::string(kSpacePiece), pre_where), SplitBehavior::MergedWithNext, false});
        }
    } else if (has_pre) {
        bool byte_level = false;
        parse_pre_tokenizer(root["pre_tokenizer"], pre_where, impl, byte_level);
        if (byte_level) fail("{}: a ByteLevel step does not fit byte_fallback BPE (its pieces are characters)", pre_where);
    }
    if (!impl.spaces_as_pieces) {
        fail("{}: byte_fallback BPE needs spaces written as U+2581 (normalizer Replace ' ' -> U+2581, or pre_tokenizer "
             "Metaspace)",
             where);
    }
    parse_sentencepiece_decoder(root, where + ": decoder", impl);
    static constexpr std::array<const char*, 4> kPrependNames{"", ", U+2581 prepended", ", U+2581 prepended unless at a space",
                                                              ", U+2581 prepended at the start unless at a space"};
    impl.normalizer_name = fmt::format("SentencePiece (spaces as U+2581{})", kPrependNames[static_cast<std::size_t>(impl.prepend)]);
    impl.pre_tokenizer_name = impl.pre_tokenizer.describe();
}

// tokenizer_config.json's bos_token/eos_token: a string, {"content": ...} or null.
std::optional<std::int32_t> config_token(const nlohmann::json& config, const char* key, const std::string& where,
                                         const Tokenizer::Impl& impl) {
    if (!config.contains(key) || config[key].is_null()) return std::nullopt;
    const nlohmann::json& value = config[key];
    const std::string content = value.is_string() ? value.get<std::string>() : string_member(value, "content", where + "." + key);
    const auto found = impl.text_to_id.find(content);
    if (found == impl.text_to_id.end()) fail("{}: {} '{}' is not in the vocabulary", where, key, content);
    return found->second;
}

std::string config_chat_template(const nlohmann::json& config, const std::string& where) {
    if (!config.contains("chat_template") || config["chat_template"].is_null()) return {};
    const nlohmann::json& value = config["chat_template"];
    if (value.is_string()) return value.get<std::string>();
    // Several named templates: the one called "default", else the first.
    if (value.is_array() && !value.empty()) {
        for (const nlohmann::json& entry : value) {
            if (entry.is_object() && entry.value("name", "") == "default") return string_member(entry, "template", where);
        }
        return string_member(value[0], "template", where + ".chat_template[0]");
    }
    fail("{}: chat_template must be a string or a list of named templates", where);
}

// ---- GGUF ----

std::int64_t value_as_integer(const gguf::Value& value, const std::string& where) {
    return std::visit(
        [&](const auto& v) -> std::int64_t {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
                return static_cast<std::int64_t>(v);
            } else {
                fail("{}: expected integers", where);
            }
        },
        value.storage);
}

std::optional<std::int32_t> gguf_token_id(const gguf::Metadata& metadata, const char* key, std::size_t vocab_size) {
    if (!metadata.contains(key)) return std::nullopt;
    const std::int64_t id = metadata.integer(key);
    if (id < 0 || static_cast<std::uint64_t>(id) >= vocab_size) {
        fail("GGUF {}: token id {} outside the vocabulary of {} tokens", key, id, vocab_size);
    }
    return static_cast<std::int32_t>(id);
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

namespace {

// `config` (tokenizer_config.json) may be null; the names stand in for paths in messages.
std::shared_ptr<Tokenizer::Impl> load_hf(const nlohmann::json& root, const std::string& where,
                                         const nlohmann::json* config, const std::string& config_where) {
    using Impl = Tokenizer::Impl;
    if (!root.is_object()) fail("{}: expected a JSON object", where);
    auto impl = std::make_unique<Impl>();
    Spec spec;
    spec.source = where;

    const nlohmann::json& model = member(root, "model", where);
    const std::string model_where = where + ": model";
    const std::string type = model.contains("type") ? string_member(model, "type", model_where) : "BPE";
    if (type != "BPE") {
        fail("{}: unsupported tokenizer model '{}' (only BPE: byte-level, or with byte_fallback)", model_where, type);
    }
    const bool byte_fallback = bool_member(model, "byte_fallback", false, model_where);
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
            fail("{}: {} is not supported", model_where, key);
        }
    }
    if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() != 0.0) {
        fail("{}: BPE dropout is not supported", model_where);
    }
    spec.ignore_merges = bool_member(model, "ignore_merges", false, model_where);

    const nlohmann::json& vocab = member(model, "vocab", model_where);
    if (!vocab.is_object()) fail("{}: 'vocab' must be an object", model_where);
    spec.vocab.reserve(vocab.size());
    for (const auto& [text, id] : vocab.items()) {
        if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= kMaxVocabulary) {
            fail("{}: vocab entry '{}' needs an id in [0, {})", model_where, text, kMaxVocabulary);
        }
        spec.vocab.emplace_back(text, id.get<std::int32_t>());
    }
    const nlohmann::json& merges = member(model, "merges", model_where);
    if (!merges.is_array()) fail("{}: 'merges' must be an array", model_where);
    spec.merges.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
        const nlohmann::json& merge = merges[i];
        // Older files write "left right"; newer ones ["left", "right"].
        if (merge.is_string()) {
            spec.merges.push_back(split_merge(merge.get_ref<const std::string&>(), fmt::format("{}: merge {}", model_where, i)));
        } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
            spec.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
        } else {
            fail("{}: merge {} must be a string or a pair of strings", model_where, i);
        }
    }

    if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
        const nlohmann::json& added = root["added_tokens"];
        if (!added.is_array()) fail("{}: 'added_tokens' must be an array", where);
        for (std::size_t i = 0; i < added.size(); ++i) {
            const std::string token_where = fmt::format("{}: added_tokens[{}]", where, i);
            const nlohmann::json& entry = added[i];
            const nlohmann::json& id = member(entry, "id", token_where);
            if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= kMaxVocabulary) {
                fail("{}: 'id' must be an integer in [0, {})", token_where, kMaxVocabulary);
            }
            AddedToken token;
            token.id = id.get<std::int32_t>();
            token.content = string_member(entry, "content", token_where);
            token.special = bool_member(entry, "special", false, token_where);
            token.lstrip = bool_member(entry, "lstrip", false, token_where);
            token.rstrip = bool_member(entry, "rstrip", false, token_where);
            token.single_word = bool_member(entry, "single_word", false, token_where);
            token.normalized = bool_member(entry, "normalized", !token.special, token_where);
            spec.added.push_back(std::move(token));
        }
    }

    parse_normalizer(root.contains("normalizer") ? root["normalizer"] : nlohmann::json(), where + ": normalizer", *impl);
    std::shared_ptr<Impl> built;
    if (byte_fallback) {
        parse_sentencepiece_steps(root, where, spec, *impl);
        built = build_byte_fallback(std::move(spec), std::move(impl));
    } else {
        if (impl->spaces_as_pieces || impl->prepend != Impl::Prepend::Never) {
            fail("{}: normalizer: Replace and Prepend of U+2581 belong to byte_fallback BPE, and model.byte_fallback is "
                 "false",
                 where);
        }
        bool byte_level = false;
        if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null()) {
            parse_pre_tokenizer(root["pre_tokenizer"], where + ": pre_tokenizer", *impl, byte_level);
        }
        if (!byte_level) {
            fail("{}: pre_tokenizer has no ByteLevel step; supported are byte-level BPE and BPE with byte_fallback", where);
        }
        if (root.contains("decoder") && !root["decoder"].is_null() &&
            string_member(root["decoder"], "type", where + ": decoder") != "ByteLevel") {
            fail("{}: unsupported decoder '{}' (only ByteLevel)", where, root["decoder"]["type"].get<std::string>());
        }
        impl->pre_tokenizer_name = impl->pre_tokenizer.describe();
        built = build(std::move(spec), std::move(impl));
    }
    if (config != nullptr) {
        if (!config->is_object()) fail("{}: expected a JSON object", config_where);
        // The checks above name keys; a value of an unexpected JSON type still surfaces as
        // Error naming the file rather than as a library exception.
        try {
            built->bos = config_token(*config, "bos_token", config_where, *built);
            built->eos = config_token(*config, "eos_token", config_where, *built);
            built->chat_template = config_chat_template(*config, config_where);
        } catch (const nlohmann::json::exception& e) {
            fail("{}: {}", config_where, e.what());
        }
    }
    return built;
}

// load_hf, with any JSON type error its named checks did not foresee still naming the file.
std::shared_ptr<Tokenizer::Impl> load_hf_checked(const nlohmann::json& root, const std::string& where,
                                                 const nlohmann::json* config, const std::string& config_where) {
    try {
        return load_hf(root, where, config, config_where);
    } catch (const nlohmann::json::exception& e) {
        fail("{}: {}", where, e.what());
    }
}

}  // namespace

Tokenizer Tokenizer::from_hf(const std::string& tokenizer_json_path, const std::string& tokenizer_config_path) {
    const nlohmann::json root = read_json_file(tokenizer_json_path, kMaxTokenizerJsonBytes, kMaxJsonDepth);
    if (tokenizer_config_path.empty()) return Tokenizer(load_hf_checked(root, tokenizer_json_path, nullptr, {}));
    const nlohmann::json config = read_json_file(tokenizer_config_path, kMaxTokenizerConfigBytes, kMaxJsonDepth);
    return Tokenizer(load_hf_checked(root, tokenizer_json_path, &config, tokenizer_config_path));
}

Tokenizer Tokenizer::from_hf_json(std::string_view tokenizer_json, std::optional<std::string_view> tokenizer_config_json,
                                  const std::string& name) {
    const nlohmann::json root = parse_json(tokenizer_json, name, kMaxJsonDepth);
    if (!tokenizer_config_json) return Tokenizer(load_hf_checked(root, name, nullptr, {}));
    const std::string config_name = name + " (tokenizer_config.json)";
    const nlohmann::json config = parse_json(*tokenizer_config_json, config_name, kMaxJsonDepth);
    return Tokenizer(load_hf_checked(root, name, &config, config_name));
}

namespace {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum GgufTokenType : std::int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

std::vector<std::int64_t> gguf_token_types(const gguf::Metadata& metadata, std::size_t count, const std::string& where) {
    const gguf::Array& array = metadata.array("tokenizer.ggml.token_type");
    if (array.items.size() != count) {
        fail("{} tokenizer.ggml.token_type has {} entries for {} tokens", where, array.items.size(), count);
    }
    std::vector<std::int64_t> types(count);
    for (std::size_t i = 0; i < count; ++i) types[i] = value_as_integer(array.items[i], where + " tokenizer.ggml.token_type");
    return types;
}

// tokenizer.ggml.model "llama": SentencePiece BPE. Normal pieces merge by score; byte pieces
// <0xXX> catch what no piece covers; control tokens (and the unknown token) are special added
// tokens, user-defined ones plain added tokens, both matched whole on the raw text as llama.cpp
// and transformers' GGUF converter do. Spaces become "▁" and decode back.
// Gemma keeps its runs of 2..31 spaces as user-defined tokens spelled with real spaces and a
// placeholder score. transformers respells them "▁▁..." and merges them like pieces, ranked by
// their place in the vocabulary, i.e. before every scored piece (so 32 spaces become 16 + 16, where
// llama.cpp, matching them whole, gives 31 + 1); Kindred follows transformers: they merge first,
// shorter runs before longer ones.
std::shared_ptr<Tokenizer::Impl> load_sentencepiece_gguf(const gguf::Metadata& metadata) {
    const std::string where = "GGUF";
    // llama.cpp prefixes a space to text after each special token when this is true (its default);
    // transformers prefixes only the first. Without a reference that agrees, only false (Gemma's) is
    // accepted.
    const bool prefix = !metadata.contains("tokenizer.ggml.add_space_prefix") ||
                        metadata.boolean("tokenizer.ggml.add_space_prefix");
    if (prefix) {
        fail("{} tokenizer.ggml.add_space_prefix is {}; only SentencePiece vocabularies without the dummy prefix "
             "(false, as Gemma's) are supported",
             where, metadata.contains("tokenizer.ggml.add_space_prefix") ? "true" : "missing (llama.cpp's default: true)");
    }
    std::vector<std::string> tokens = metadata.string_array("tokenizer.ggml.tokens");
    if (static_cast<std::int64_t>(tokens.size()) > kMaxVocabulary) {
        fail("{} tokenizer.ggml.tokens: {} tokens is implausibly many", where, tokens.size());
    }
    const std::vector<std::int64_t> types = gguf_token_types(metadata, tokens.size(), where);
    const gguf::Array& score_array = metadata.array("tokenizer.ggml.scores");
    if (score_array.items.size() != tokens.size()) {
        fail("{} tokenizer.ggml.scores has {} entries for {} tokens", where, score_array.items.size(), tokens.size());
    }
    std::vector<float> scores(tokens.size());
    for (std::size_t i = 0; i < scores.size(); ++i) {
        const float* score = std::get_if<float>(&score_array.items[i].storage);
        if (score == nullptr || !std::isfinite(*score)) {
            fail("{} tokenizer.ggml.scores[{}] is not a finite float32", where, i);
        }
        scores[i] = *score;
    }

    auto impl = std::make_unique<Tokenizer::Impl>();
    impl->pre_tokenizer_name = "none (SentencePiece: spaces as U+2581)";
    Spec spec;
    spec.source = "GGUF tokenizer.ggml.*";
    std::array<std::int32_t, 256> byte_ids;
    byte_ids.fill(-1);
    std::vector<std::uint8_t> mergeable(tokens.size(), 0);
    float best_score = -std::numeric_limits<float>::infinity();
    for (std::size_t i = 0; i < tokens.size(); ++i)
        if (types[i] == kNormal) best_score = std::max(best_score, scores[i]);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const auto id = static_cast<std::int32_t>(i);
        const bool space_run = types[i] == kUserDefined && !tokens[i].empty() && tokens[i].size() <= 64 &&
                               tokens[i].find_first_not_of(' ') == std::string::npos;
        if (space_run) {
            std::string respelled;
            for (std::size_t n = 0; n < tokens[i].size(); ++n) respelled += kSpacePiece;
            scores[i] = (std::isfinite(best_score) ? best_score : 0.0f) + static_cast<float>(65 - tokens[i].size());
            mergeable[i] = 1;
            spec.vocab.emplace_back(std::move(respelled), id);
            continue;
        }
        switch (types[i]) {
            case kNormal: mergeable[i] = 1; [[fallthrough]];
            case kUnused: spec.vocab.emplace_back(tokens[i], id); break;
            case kByte: {
                const int byte = byte_piece_value(tokens[i]);
                if (byte < 0) fail("{} tokenizer.ggml.tokens[{}] '{}' has type byte but is not <0xXX>", where, i, tokens[i]);
                if (byte_ids[static_cast<std::size_t>(byte)] >= 0) {
                    fail("{} tokenizer.ggml.tokens[{}] '{}' repeats the byte piece of token {}", where, i, tokens[i],
                         byte_ids[static_cast<std::size_t>(byte)]);
                }
                byte_ids[static_cast<std::size_t>(byte)] = id;
                spec.vocab.emplace_back(tokens[i], id);
                break;
            }
            case kUnknown: case kControl: case kUserDefined: {
                if (tokens[i].empty()) fail("{} tokenizer.ggml.tokens[{}] is empty", where, i);
                AddedToken token;
                token.content = tokens[i];
                token.id = id;
                token.special = types[i] != kUserDefined;
                spec.added.push_back(std::move(token));
                break;
            }
            default:
                fail("{} tokenizer.ggml.token_type[{}] is {}; expected 1 to 6 (normal, unknown, control, "
                     "user-defined, unused, byte)", where, i, types[i]);
        }
    }
    for (int b = 0; b < 256; ++b) {
        if (byte_ids[static_cast<std::size_t>(b)] < 0) {
            fail("{} tokenizer.ggml.tokens: no byte piece <0x{:02X}>; SentencePiece byte fallback needs all 256", where, b);
        }
    }

    BpeModel::WordMap model_ids;
    std::vector<std::uint8_t> present;
    const std::vector<std::uint8_t> is_added = fill_vocabulary(spec, *impl, model_ids, present);
    std::vector<std::uint8_t> is_byte(impl->texts.size(), 0);
    for (std::size_t id = 0; id < types.size(); ++id) is_byte[id] = types[id] == kByte ? 1 : 0;
    fill_piece_bytes(*impl, is_added, is_byte);
    BpeModel::WordMap pieces;
    pieces.reserve(tokens.size());
    for (std::size_t id = 0; id < impl->texts.size(); ++id) {
        // The first of duplicate pieces wins: it has the higher score.
        if (mergeable[id] != 0 && !impl->texts[id].empty()) pieces.emplace(impl->texts[id], static_cast<std::int32_t>(id));
    }
    impl->sentencepiece = std::make_unique<SentencePieceBpe>(std::move(pieces), scores, byte_ids);
    register_added(std::move(spec.added), *impl);
    return std::shared_ptr<Tokenizer::Impl>(std::move(impl));
}

// tokenizer.ggml.model "gpt2": byte-level BPE with the file's merges and pre-tokenizer.
std::shared_ptr<Tokenizer::Impl> load_byte_level_gguf(const gguf::Metadata& metadata) {
    auto impl = std::make_unique<Tokenizer::Impl>();
    const std::string pre = metadata.contains("tokenizer.ggml.pre") ? metadata.string("tokenizer.ggml.pre") : "default";
    impl->pre_tokenizer = pre_tokenizer_for_gguf(pre);
    impl->pre_tokenizer_name = "'" + pre + "' " + impl->pre_tokenizer.describe();

    Spec spec;
    spec.source = "GGUF tokenizer.ggml.*";
    std::vector<std::string> tokens = metadata.string_array("tokenizer.ggml.tokens");
    if (static_cast<std::int64_t>(tokens.size()) > kMaxVocabulary) {
        fail("GGUF tokenizer.ggml.tokens: {} tokens is implausibly many", tokens.size());
    }
    const std::vector<std::int64_t> types = metadata.contains("tokenizer.ggml.token_type")
                                                ? gguf_token_types(metadata, tokens.size(), "GGUF")
                                                : std::vector<std::int64_t>(tokens.size(), kNormal);
    // Control and user-defined tokens are matched whole before BPE, but only control tokens
    // count as special.
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const auto id = static_cast<std::int32_t>(i);
        if ((types[i] == kControl || types[i] == kUserDefined) && !tokens[i].empty()) {
            AddedToken token;
            token.content = tokens[i];
            token.id = id;
            token.special = types[i] == kControl;
            spec.added.push_back(std::move(token));
        } else {
            spec.vocab.emplace_back(std::move(tokens[i]), id);
        }
    }
    const std::vector<std::string> merges = metadata.string_array("tokenizer.ggml.merges");
    spec.merges.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
        spec.merges.push_back(split_merge(merges[i], fmt::format("GGUF tokenizer.ggml.merges[{}]", i)));
    }
    // Control tokens share the one GGUF token list, so merges may resolve through them too.
    for (const AddedToken& token : spec.added) spec.vocab.emplace_back(token.content, token.id);
    return build(std::move(spec), std::move(impl));
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const gguf::Metadata& metadata, const std::string& name) {
    try {
        const std::string model = metadata.string("tokenizer.ggml.model");
        std::shared_ptr<Impl> built;
        if (model == "gpt2") {
            built = load_byte_level_gguf(metadata);
        } else if (model == "llama") {
            built = load_sentencepiece_gguf(metadata);
        } else {
            fail("GGUF tokenizer.ggml.model '{}' is not supported ('gpt2': byte-level BPE; 'llama': SentencePiece BPE)",
                 model);
        }
        built->bos = gguf_token_id(metadata, "tokenizer.ggml.bos_token_id", built->texts.size());
        built->eos = gguf_token_id(metadata, "tokenizer.ggml.eos_token_id", built->texts.size());
        if (metadata.contains("tokenizer.chat_template")) built->chat_template = metadata.string("tokenizer.chat_template");
        return Tokenizer(std::move(built));
    } catch (const Error& error) {
        if (name.empty()) throw;
        fail("{}: {}", name, error.what());
    }
}

void Tokenizer::Impl::encode_words(std::string_view text, std::size_t begin, std::size_t end, const NormalizedText* map,
                                   EncodeState& state, Encoding& out) const {
    std::vector<ByteRange>& words = state.words;
    words.clear();
    pre_tokenizer.split(text, begin, end, words, state.scratch);
    const bool every_byte = bpe->encodes_every_byte();
    for (const auto& [word_begin, word_end] : words) {
        const std::size_t first = out.ids.size();
        state.session->encode_word(text.substr(word_begin, word_end - word_begin), out.ids);
        // A whole-word hit (ignore_merges) may hold bytes that have no token of their own; it
        // covers its word exactly, so none of its bytes were dropped.
        const bool whole_word =
            out.ids.size() == first + 1 && bpe->token_length(out.ids[first]) == word_end - word_begin;
        std::size_t pos = word_begin;
        for (std::size_t i = first; i < out.ids.size(); ++i) {
            std::size_t start = pos;
            std::size_t next = pos + bpe->token_length(out.ids[i]);
            if (!every_byte && !whole_word) {
                // Walk past dropped bytes: before the token, and inside it (merges join the
                // bytes on either side of a dropped one).
                while (!bpe->encodes_byte(static_cast<unsigned char>(text[start]))) {
                    ++start;
                    ++out.dropped_bytes;
                }
                next = start;
                for (std::uint32_t left = bpe->token_length(out.ids[i]); left > 0; ++next) {
                    if (bpe->encodes_byte(static_cast<unsigned char>(text[next]))) {
                        --left;
                    } else {
                        ++out.dropped_bytes;
                    }
                }
            }
            if (map == nullptr) {
                out.spans.emplace_back(start, next);
            } else {
                out.spans.emplace_back(map->begin_of[start], map->end_of[next - 1]);
            }
            pos = next;
        }
        for (; !every_byte && pos < word_end; ++pos) ++out.dropped_bytes;
    }
}

namespace {

// Splits text[begin,end) around the added tokens `matcher` finds, honouring the tokens'
// flags as HF's AddedVocabulary does: plain(begin, end) for the text between, and
// token(token, begin, end) for each match (its range widened by lstrip/rstrip). A control token
// matches only where special_allowed(begin, end) says so.
template <typename SpecialAllowed, typename Plain, typename Token>
void split_on_added(const AddedTokenMatcher& matcher, std::string_view text, std::size_t begin, std::size_t end,
                    const SpecialAllowed& special_allowed, Plain&& plain, Token&& emit) {
    const std::string_view bounded = text.substr(0, end);
    const auto accept = [&](const AddedToken& token, std::size_t from, std::size_t to) {
        return !token.special || special_allowed(from, to);
    };
    std::size_t plain_from = begin;  // start of text not yet handed on
    std::size_t search_from = begin;
    std::size_t at = 0;
    while (const AddedToken* token = matcher.find(bounded, search_from, end, at, accept)) {
        std::size_t start = at;
        std::size_t stop = at + token->content.size();
        search_from = stop;
        if (token->single_word) {
            const bool word_before = start > begin && is_word_character(last_code_point(text.substr(begin, start - begin)));
            const bool word_after = stop < end && is_word_character(utf8_decode_at(bounded, stop, utf8_length_at(bounded, stop)));
            if (word_before || word_after) continue;
        }
        if (token->lstrip) {
            while (start > plain_from) {
                std::size_t lead = start - 1;
                while (lead > plain_from && (static_cast<unsigned char>(text[lead]) & 0xC0) == 0x80) --lead;
                const std::size_t length = utf8_length_at(bounded, lead);
                if (lead + length != start || !is_whitespace(utf8_decode_at(bounded, lead, length))) break;
                start = lead;
            }
        }
        if (token->rstrip) {
            while (stop < end) {
                const std::size_t length = utf8_length_at(bounded, stop);
                if (!is_whitespace(utf8_decode_at(bounded, stop, length))) break;
                stop += length;
            }
            search_from = stop;
        }
        if (plain_from < start) plain(plain_from, start);
        emit(*token, start, stop);
        plain_from = stop;
    }
    if (plain_from < end) plain(plain_from, end);
}

}  // namespace

void Tokenizer::Impl::encode_pieces(std::string_view text, std::size_t begin, std::size_t end, EncodeState& state,
                                    Encoding& out) const {
    // SentencePiece's normalization: " " -> "▁", perhaps a "▁" prepended (it covers no input byte);
    // spans map back through it.
    std::string& normalized = state.normalized;
    std::vector<ByteRange>& origin = state.origin;
    normalized.clear();
    origin.clear();
    const std::string_view stretch = text.substr(begin, end - begin);
    const bool at_space = stretch.starts_with(' ') || stretch.starts_with(kSpacePiece);
    if (prepend == Prepend::Always || (prepend == Prepend::UnlessSpace && !at_space) ||
        (prepend == Prepend::FirstUnlessSpace && begin == 0 && !at_space)) {
        normalized += kSpacePiece;
        origin.insert(origin.end(), kSpacePiece.size(), ByteRange{begin, begin});
    }
    for (std::size_t pos = begin; pos < end; ++pos) {
        const bool space = text[pos] == ' ';
        normalized += space ? kSpacePiece : text.substr(pos, 1);
        origin.insert(origin.end(), space ? kSpacePiece.size() : 1, ByteRange{pos, pos + 1});
    }
    state.words.clear();
    pre_tokenizer.split(normalized, 0, normalized.size(), state.words, state.scratch);
    for (const auto& [word_begin, word_end] : state.words) {
        const std::size_t first = out.ids.size();
        state.lengths.clear();
        sentencepiece->encode(std::string_view(normalized).substr(word_begin, word_end - word_begin), out.ids, state.lengths);
        std::size_t at = word_begin;
        for (std::size_t i = first; i < out.ids.size(); ++i) {
            const std::size_t length = state.lengths[i - first];
            out.spans.emplace_back(origin[at].first, origin[at + length - 1].second);
            at += length;
        }
    }
}

void Tokenizer::Impl::encode_plain(std::string_view text, std::size_t begin, std::size_t end,
                                   const SpecialScope& specials, EncodeState& state, Encoding& out) const {
    if (sentencepiece) {
        encode_pieces(text, begin, end, state, out);
        return;
    }
    const bool ascii = normal_form && std::all_of(text.begin() + static_cast<std::ptrdiff_t>(begin),
                                                  text.begin() + static_cast<std::ptrdiff_t>(end),
                                                  [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (!has_normalized_tokens && (!normal_form || ascii)) {
        encode_words(text, begin, end, nullptr, state, out);  // normalization would change nothing
        return;
    }
    NormalizedText normalized;
    if (normal_form && !ascii) {
        normalize(text, begin, end, *normal_form, normalized);
    } else {
        normalized.text.assign(text.substr(begin, end - begin));
        for (std::size_t pos = begin; pos < end; ++pos) {
            normalized.begin_of.push_back(pos);
            normalized.end_of.push_back(pos + 1);
        }
    }
    // HF's second pass: added tokens flagged `normalized` match on the normalized text.
    const std::string_view view = normalized.text;
    split_on_added(
        normalized_matcher, view, 0, view.size(),
        [&](std::size_t from, std::size_t to) { return specials.allows(normalized.begin_of[from], normalized.end_of[to - 1]); },
        [&](std::size_t from, std::size_t to) { encode_words(view, from, to, &normalized, state, out); },
        [&](const AddedToken& token, std::size_t from, std::size_t to) {
            out.ids.push_back(token.id);
            out.spans.emplace_back(normalized.begin_of[from], normalized.end_of[to - 1]);
        });
}

void Tokenizer::Impl::encode_text(std::string_view text, const SpecialScope& specials, EncodeState& state,
                                  Encoding& out) const {
    split_on_added(
        raw_matcher, text, 0, text.size(), [&](std::size_t from, std::size_t to) { return specials.allows(from, to); },
        [&](std::size_t from, std::size_t to) { encode_plain(text, from, to, specials, state, out); },
        [&](const AddedToken& token, std::size_t from, std::size_t to) {
            out.ids.push_back(token.id);
            out.spans.emplace_back(from, to);
        });
}

namespace {

Encoding encode_in_scope(const Tokenizer::Impl& impl, std::string_view text, const SpecialScope& specials) {
    Encoding out;
    // Roughly four bytes per token in English; one reservation saves most regrowth.
    out.ids.reserve(text.size() / 4 + 8);
    out.spans.reserve(text.size() / 4 + 8);
    Tokenizer::Impl::EncodeState state(impl.bpe.get());
    impl.encode_text(text, specials, state, out);
    return out;
}

}  // namespace

Encoding Tokenizer::encode_with_spans(std::string_view text, bool parse_special) const {
    SpecialScope specials;
    specials.everywhere = parse_special;
    return encode_in_scope(*impl_, text, specials);
}

Encoding Tokenizer::encode_with_markup(std::string_view text, std::span<const ByteRange> markup) const {
    for (std::size_t i = 0; i < markup.size(); ++i) {
        const auto [begin, end] = markup[i];
        if (begin > end || end > text.size() || (i > 0 && begin < markup[i - 1].second))
            fail("tokenizer: markup range {} [{}, {}) is reversed, overlaps the previous one or lies outside the "
                 "text ({} bytes)",
                 i, begin, end, text.size());
    }
    SpecialScope specials;
    specials.everywhere = false;
    specials.ranges = markup;
    return encode_in_scope(*impl_, text, specials);
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
    return encode_with_spans(text, parse_special).ids;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids) const {
    std::string result;
    for (const std::int32_t id : ids) {
        impl_->check_id(id);
        result += impl_->bytes_of(id);
    }
    std::size_t strip = 0;
    while (strip < impl_->decode_strip && strip < result.size() && result[strip] == ' ') ++strip;
    return result.erase(0, strip);
}

std::size_t Tokenizer::decode_strip() const { return impl_->decode_strip; }

std::string_view Tokenizer::token_bytes(std::int32_t id) const {
    impl_->check_id(id);
    return impl_->bytes_of(id);
}

std::string_view Tokenizer::token_text(std::int32_t id) const {
    impl_->check_id(id);
    return impl_->texts[static_cast<std::size_t>(id)];
}

std::optional<std::int32_t> Tokenizer::find_token(std::string_view token) const {
    const auto found = impl_->text_to_id.find(token);
    if (found == impl_->text_to_id.end()) return std::nullopt;
    return found->second;
}

std::size_t Tokenizer::vocab_size() const { return impl_->texts.size(); }
std::optional<std::int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<std::int32_t> Tokenizer::eos_id() const { return impl_->eos; }

bool Tokenizer::is_special(std::int32_t id) const {
    return id >= 0 && static_cast<std::size_t>(id) < impl_->special.size() && impl_->special[static_cast<std::size_t>(id)] != 0;
}

const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }

std::string Tokenizer::summary() const {
    const Impl& impl = *impl_;
    const auto count_special = std::count(impl.special.begin(), impl.special.end(), std::uint8_t{1});
    const auto name = [&](const std::optional<std::int32_t>& id) {
        return id ? fmt::format("'{}' ({})", impl.texts[static_cast<std::size_t>(*id)], *id) : std::string("none");
    };
    const std::string model =
        impl.sentencepiece
            ? fmt::format("SentencePiece BPE tokenizer from {}: {} tokens ({} added, {} special), {}, byte fallback",
                          impl.source, impl.texts.size(), impl.added.size(), count_special,
                          impl.sentencepiece->by_score() ? fmt::format("{} scored pieces", impl.sentencepiece->piece_count())
                                                         : fmt::format("{} merges", impl.sentencepiece->merge_count()))
            : fmt::format("Byte-level BPE tokenizer from {}: {} tokens ({} added, {} special), {} merges", impl.source,
                          impl.texts.size(), impl.added.size(), count_special, impl.bpe->merge_count());
    return fmt::format(
        "{}; normalizer {}; pre-tokenizer {}; BOS {}, EOS {}; chat template: {}.", model, impl.normalizer_name,
        impl.pre_tokenizer_name, name(impl.bos), name(impl.eos),
        impl.chat_template.empty() ? std::string("none") : fmt::format("{} characters", impl.chat_template.size()));
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer)
    : tokenizer_(tokenizer), strip_left_(tokenizer.decode_strip()) {}

std::string StreamingDecoder::push(std::int32_t id) {
    pending_ += tokenizer_.token_bytes(id);
    // Until the first other byte, leading spaces go as decode() drops them.
    while (strip_left_ > 0 && !pending_.empty()) {
        if (pending_[0] != ' ') {
            strip_left_ = 0;
            break;
        }
        pending_.erase(0, 1);
        --strip_left_;
    }
    const std::size_t ready = utf8_complete_prefix(pending_);
    std::string out = pending_.substr(0, ready);
    pending_.erase(0, ready);
    return out;
}

std::string StreamingDecoder::finish() {
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace kindred::text
