// infer/checkpoint_tokenizer.h — the tokenizer of a Hugging Face checkpoint directory, as transformers
// saves one: tokenizer.json (required), tokenizer_config.json (optional: bos/eos tokens, add_bos_token,
// the chat template in transformers 4) and chat_template.jinja (transformers 5 keeps the template
// there). One reader for everything that opens such a directory: LoadedModel (chat, generate, score,
// serve, train) and the commands that need only the tokenizer (tokenize, inspect).
#pragma once

#include <string>

#include "text/tokenizer.h"

namespace kindred::infer {

struct CheckpointTokenizer {
    text::Tokenizer tokenizer;
    bool add_bos = false;       // tokenizer_config.json's add_bos_token (absent: false)
    std::string chat_template;  // tokenizer_config.json's, else chat_template.jinja's; empty when neither
    std::string chat_template_path;  // the file it came from
};

// Errors name the file: tokenizer.json missing, or any of the files malformed or unsupported.
CheckpointTokenizer read_checkpoint_tokenizer(const std::string& directory);

}  // namespace kindred::infer
