// The hostile-input corpus (tests/corpus/gguf-malformed/, written by
// tools/make_malformed_gguf.py): every file must be rejected with kindred::Error whose
// message names the file and the problem — never a crash, hang or huge allocation.
#include <filesystem>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_paths.h"

namespace kindred::gguf {
namespace {

// Case (file stem) -> a phrase its error message must contain.
const std::map<std::string, std::string>& expected_phrases() {
    static const std::map<std::string, std::string> phrases = {
        {"empty", "truncated: magic"},
        {"truncated-header", "truncated: tensor count"},
        {"bad-magic", "not a GGUF file"},
        {"version-1", "version 1 is not supported"},
        {"version-4", "unsupported GGUF version 4"},
        {"big-endian", "big-endian"},
        {"truncated-metadata", "truncated: key 'general.architecture'"},
        {"truncated-tensor-info", "truncated: tensor 'b'"},
        {"truncated-tensor-data", "tensor 'b': bytes 32..48 of the data section lie outside the file"},
        {"huge-kv-count", "metadata count 4611686018427387904"},
        {"huge-tensor-count", "tensor count 1099511627776"},
        {"huge-array-length", "key 'a': array length 2305843009213693952"},
        {"huge-string-length", "key 's': string length 9223372036854775808"},
        {"huge-key-length", "string length 1099511627776"},
        {"huge-nested-array-length", "array length 1125899906842624"},
        {"deeply-nested-array", "arrays nested deeper than 8"},
        {"unknown-value-type", "key 'x': unknown value type 13"},
        {"unknown-array-element-type", "key 'x': unknown array element type 99"},
        {"bad-bool", "key 'flag': bool value 2"},
        {"empty-key", "empty key"},
        {"duplicate-key", "duplicate key 'x'"},
        {"bad-utf8-key", "not valid UTF-8"},
        {"bad-utf8-value", "key 'name': string at byte"},
        {"bad-utf8-array-string", "key 'tokens': string at byte"},
        {"bad-utf8-overlong", "not valid UTF-8"},
        {"bad-utf8-tensor-name", "name of tensor 0: string at byte"},
        {"alignment-not-power-of-two", "'general.alignment': 48 is not a power of two"},
        {"alignment-zero", "'general.alignment': 0 is not a power of two"},
        {"alignment-wrong-type", "'general.alignment' has type string, expected uint32"},
        {"too-many-dims", "tensor 'a': 5 dimensions"},
        {"zero-n-dims", "tensor 'a': 0 dimensions"},
        {"zero-dim", "tensor 'a': dimension 1 is zero"},
        {"overflowing-dims", "tensor 'a': element count overflows"},
        {"overflowing-bytes", "tensor 'a': byte size overflows"},
        {"unknown-tensor-type", "tensor 'a': unknown ggml tensor type id 4"},
        {"unknown-tensor-type-large", "unknown ggml tensor type id 4294967295"},
        {"row-not-block-multiple", "tensor 'a': row length 16 is not a multiple of the Q4_0 block size 32"},
        {"misaligned-offset", "tensor 'b': offset 16 is not aligned to 32"},
        {"offset-out-of-file", "tensor 'b': bytes 1048576..1048592"},
        {"offset-overflow", "tensor 'b': bytes 18446744073709551584"},
        {"tensor-past-end", "tensor 'b': bytes 32..96"},
        {"overlapping-tensors", "tensor 'b' (offset 32) overlaps tensor 'a'"},
        {"duplicate-tensor-name", "duplicate tensor name 'a'"},
        {"empty-tensor-name", "tensor 0 has an empty name"},
    };
    return phrases;
}

TEST(GgufMalformed, EveryCorpusFileIsRejectedWithANamedError) {
    const std::filesystem::path corpus = testing::source_path("tests/corpus/gguf-malformed");
    std::size_t seen = 0;
    for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
        if (entry.path().extension() != ".gguf") continue;
        ++seen;
        const std::string stem = entry.path().stem().string();
        const auto expected = expected_phrases().find(stem);
        ASSERT_NE(expected, expected_phrases().end()) << "no expected message for corpus file " << stem;
        try {
            (void)File::open(entry.path().string());
            ADD_FAILURE() << stem << ": accepted";
        } catch (const Error& error) {
            const std::string message = error.what();
            EXPECT_EQ(message.rfind(entry.path().string() + ": ", 0), 0u) << stem << ": " << message;
            EXPECT_NE(message.find(expected->second), std::string::npos) << stem << ": " << message;
        }
    }
    EXPECT_EQ(seen, expected_phrases().size()) << "corpus files missing";
}

}  // namespace
}  // namespace kindred::gguf
