#include "data/reply_checker.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "data/records.h"
#include "text/pretokenizer.h"

namespace kindred::data {
namespace {

// Everyday forms of the labels (and near synonyms) that replies use far more than the label
// nouns; each with the emotion-head label it names.
constexpr LabelMapping kEverydayFeelings[] = {
    {"sad", "sadness"},          {"unhappy", "sadness"},         {"upset", "sadness"},          {"hurt", "sadness"},
    {"hurting", "sadness"},      {"hurts", "sadness"},           {"miserable", "sadness"},      
    {"heartbroken", "grief"},    {"heartbreak", "grief"},        {"heartbreaking", "grief"},    {"grieving", "grief"},
    {"devastating", "grief"},        {"lonely", "loneliness"},      {"isolated", "loneliness"},
    {"homesick", "loneliness"},  {"left out", "loneliness"},     {"hopeless", "depression"},    {"helpless", "depression"},
    {"numb", "depression"},      {"depressed", "depression"},   {"stuck", "depression"},
    {"disappointing", "disappointment"}, {"discouraged", "disappointment"}, {"let down", "disappointment"},
    {"scared", "fear"},          {"frightened", "fear"},         {"frightening", "fear"},       {"terrifying", "fear"},
    {"scary", "fear"},           {"shaken", "fear"},             {"unsafe", "fear"},            {"worried", "anxiety"},
    {"worry", "anxiety"},        {"worrying", "anxiety"},        {"worries", "anxiety"},        {"nervous", "anxiety"},
    {"stressed", "anxiety"},     {"stress", "anxiety"},          {"stressful", "anxiety"},      {"overwhelmed", "anxiety"},
    {"overwhelming", "anxiety"}, {"panicked", "anxiety"},        {"panic", "anxiety"},          {"tense", "anxiety"},
    {"uneasy", "anxiety"},       {"mad", "anger"},               {"livid", "anger"},            {"resentful", "anger"},
    {"betrayed", "anger"},       {"outraged", "anger"},          {"frustrated", "annoyance"},   {"frustrating", "annoyance"},
    {"frustration", "annoyance"}, {"irritated", "annoyance"},    {"irritating", "annoyance"},   {"annoying", "annoyance"},
    {"fed up", "annoyance"},     {"humiliated", "shame"},        {"humiliating", "shame"},      {"embarrassing", "shame"},
    {"envious", "jealousy"},     {"envy", "jealousy"},           {"confused", "confusion"},     {"confusing", "confusion"},
    {"happy", "joy"},            {"glad", "joy"},                {"delighted", "joy"},          {"overjoyed", "joy"},
    {"thrilled", "excitement"},  {"exciting", "excitement"},     {"thankful", "gratitude"},     {"relieved", "contentment"},
         {"peaceful", "contentment"},    {"shocked", "surprise"},       {"shock", "surprise"},
    {"shocking", "surprise"},    {"amazed", "surprise"},         {"stunned", "surprise"},       {"curious", "curiosity"},
    {"optimistic", "hope"},      {"guilt", "guilt"},             {"regret", "guilt"},           {"remorseful", "guilt"},
    {"sentimental", "nostalgia"}, {"hopeful", "hope"},           {"insecure", "anxiety"},       {"afraid", "fear"},
    {"exhausted", "depression"}, {"drained", "depression"},      {"angry", "anger"},            {"furious", "anger"},
};

// Source labels that do not name a feeling in a reply ("content", "love", "caring" are mostly
// other senses) or name none at all.
constexpr std::string_view kNotFeelings[] = {"neutral", "approval", "disapproval", "realization", "desire", "love", "caring",
                                             "content", "prepared", "faithful", "trusting", "anticipating", "trust", "impressed",
                                             "admiration", "curiosity", "pain", "optimism", "amusement"};

const std::vector<LabelMapping>& lexicon() {
    static const std::vector<LabelMapping> words = [] {
        std::vector<LabelMapping> all;
        const auto add = [&](std::string_view word, std::string_view label) {
            if (std::find(std::begin(kNotFeelings), std::end(kNotFeelings), word) != std::end(kNotFeelings)) return;
            if (std::any_of(all.begin(), all.end(), [&](const LabelMapping& m) { return m.source_label == word; })) return;
            all.push_back({word, label});
        };
        for (const EmotionLabel& label : emotion_labels()) add(label.name, label.name);
        for (const auto source : {empathetic_dialogues_labels(), esconv_labels(), goemotions_labels()})
            for (const LabelMapping& mapping : source) add(mapping.source_label, mapping.emotion);
        for (const LabelMapping& mapping : kEverydayFeelings) add(mapping.source_label, mapping.emotion);
        return all;
    }();
    return words;
}

struct Patterns {
    text::Regex acknowledgment{
        "(?i)\\b(i'?m|i am) (so |really |very |truly |deeply )*sorry\\b"
        "|\\b(that|this|it|which) (sounds|must|seems)\\b"
        "|^\\s*sounds\\b|\\bsounds like\\b"
        "|\\bi (hear|see) (you|that|how|why|what)\\b|\\bi can (only )?(imagine|tell|see)\\b|\\bi (totally |completely )?(understand|get it|get why|get that)\\b"
        "|\\b(that|this|it)('?s| is| was| has been|'?s been) (so |really |very |incredibly |such |a |an |truly |pretty |just |the )*"
        "(hard|tough|difficult|rough|painful|awful|terrible|horrible|heartbreaking|scary|frightening|frustrating|stressful|exciting|"
        "wonderful|great|amazing|fantastic|lovely|sweet|big deal|lot|worst|hilarious|shock|understandable|valid|normal|okay to|ok to)\\b"
        "|\\bthank(s| you) for (sharing|telling|trusting|opening|letting)\\b|\\bno wonder\\b|\\bmakes? (total |complete |perfect )?sense\\b"
        "|\\bcongrat(ulation)?s\\b|\\bwhat an? (lovely|great|wonderful|awful|terrible|hard|tough|amazing|beautiful|sweet)\\b|\\boh (no|wow)\\b|\\bugh\\b|\\bwow\\b"
        "|\\b(i'?m|i am) (so |really )?(glad|happy|proud|excited) (for you|to hear|that you|you)\\b"
        "|\\byou'?re not alone\\b|\\bit'?s (completely |totally |perfectly )?(okay|ok|normal|natural|understandable|human) to\\b"
        "|\\byou (have|had) every right\\b|\\banyone would\\b|\\bthat stinks\\b|\\bhow (awful|hard|scary|exciting|wonderful)\\b",
        "reply checker: acknowledgment"};
    // The sentence speaks to or about the user, so a feeling word in it is theirs.
    text::Regex about_user{"(?i)\\b(you|your|you'?re|yourself|sounds?|must|seem|seems|feel|feeling|feelings|felt|anyone|everybody|everyone|"
                           "it'?s (okay|ok|normal|natural|understandable|human)|being|that'?s|no wonder|people)\\b",
                           "reply checker: about the user"};
    // The replier's own feeling: "I'm glad", "I feel sad too", "I'm happy to help".
    text::Regex own_feeling{"(?i)\\b(i'?m|i am|i was|i feel|i felt|i'?d be|i would be|i'?ll be|makes me|made me)( \\w+){0,2}$",
                            "reply checker: own feeling"};
    text::Regex harsh_question{
        "(?i)^\\W*(why (didn'?t|did|would|do|don'?t|can'?t|couldn'?t) you|what (were|was) you thinking|what'?s wrong with you|"
        "are you (stupid|crazy|serious|kidding|insane|sure)|how could you|who cares|seriously|what did you expect|what'?s your name|"
        "do you like|what do you want me to)",
        "reply checker: harsh question"};
    text::Regex advice{
        "(?i)\\byou (should|must|need to|have to|ought to|gotta|better)\\b|\\bi (would |'?d )?(recommend|suggest|advise)\\b"
        "|\\bhave you (tried|considered|thought about)\\b|\\b(try|remember|make sure) to\\b|\\bthe best thing (to do )?is\\b"
        "|^\\W*(just|try|stop|go|avoid|start|focus|consider|don'?t|do|get|take|call|make|ignore|maybe you could|you could)\\b",
        "reply checker: advice"};
};

const Patterns& patterns() {
    static const Patterns compiled;
    return compiled;
}

bool matches(const text::Regex& regex, const std::string& text) {
    std::vector<text::ByteRange> found;
    regex.find_all(text, 0, text.size(), found);
    return !found.empty();
}

// Lowercase ASCII, curly apostrophes straight: what the rules read.
std::string normalized(std::string_view text) {
    std::string out = with_straight_apostrophes(text);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

struct Sentence {
    std::string text;   // without its final punctuation
    bool question = false;
};

std::vector<Sentence> sentences(const std::string& text) {
    std::vector<Sentence> out;
    for (const auto& [begin, end] : sentence_spans(text)) {
        std::string_view part(text.data() + begin, end - begin);
        bool question = false;
        while (!part.empty() && (part.back() == '.' || part.back() == '!' || part.back() == '?' || part.back() == '"')) {
            question = question || part.back() == '?';
            part.remove_suffix(1);
        }
        const auto first = part.find_first_not_of(" \t\r\"'*-");
        if (first != std::string_view::npos) out.push_back({std::string(part.substr(first)), question});
    }
    return out;
}

bool repetition_loop(const std::vector<Sentence>& parts, const std::vector<std::string>& words) {
    std::map<std::string, int> grams;
    for (std::size_t i = 0; i + 4 <= words.size(); ++i) {
        const std::string gram = words[i] + ' ' + words[i + 1] + ' ' + words[i + 2] + ' ' + words[i + 3];
        if (++grams[gram] >= 3) return true;
    }
    std::map<std::string, int> seen;
    for (const Sentence& sentence : parts) {
        const auto sentence_words = words_of(sentence.text);
        if (sentence_words.size() < 4) continue;
        std::string key;
        for (const auto& word : sentence_words) key += word + ' ';
        if (++seen[key] >= 2) return true;
    }
    return false;
}

}  // namespace

std::vector<std::pair<std::size_t, std::size_t>> sentence_spans(std::string_view text) {
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    std::size_t begin = 0;
    const auto close = [&](std::size_t end) {
        while (begin < end && (text[begin] == ' ' || text[begin] == '\t' || text[begin] == '\r' || text[begin] == '\n')) ++begin;
        if (begin < end) spans.emplace_back(begin, end);
        begin = end;
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') {
            close(i);
        } else if (c == '.' || c == '!' || c == '?') {
            while (i + 1 < text.size() && (text[i + 1] == '.' || text[i + 1] == '!' || text[i + 1] == '?' || text[i + 1] == '"')) ++i;
            close(i + 1);
        }
    }
    close(text.size());
    return spans;
}

std::vector<std::string> words_of(std::string_view text) {
    std::vector<std::string> words;
    std::string word;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || byte >= 0x80) {
            word += c;
        } else if (c >= 'A' && c <= 'Z') {
            word += static_cast<char>(c - 'A' + 'a');
        } else if (!word.empty()) {
            words.push_back(std::move(word));
            word.clear();
        }
    }
    if (!word.empty()) words.push_back(std::move(word));
    return words;
}

std::vector<std::string> ReplyCheck::missing() const {
    std::vector<std::string> out;
    if (!acknowledgment) out.emplace_back("acknowledgment");
    if (!named_feeling) out.emplace_back("named feeling");
    if (!question) out.emplace_back("question");
    return out;
}

std::span<const LabelMapping> feeling_lexicon() { return lexicon(); }

ReplyCheck check_reply(std::string_view reply) {
    const Patterns& rules = patterns();
    const std::string text = normalized(reply);
    const std::vector<Sentence> parts = sentences(text);
    ReplyCheck check;
    for (const Sentence& sentence : parts) {
        if (matches(rules.acknowledgment, sentence.text)) check.acknowledgment = true;
        if (matches(rules.advice, sentence.text)) check.advice = true;
        if (sentence.question && !matches(rules.harsh_question, sentence.text)) check.question = true;
        if (!matches(rules.about_user, sentence.text)) continue;
        // Feeling words, one- and two-word entries, skipping the replier's own.
        const std::vector<std::string> words = words_of(sentence.text);
        for (std::size_t i = 0; i < words.size(); ++i) {
            for (const std::size_t span : {std::size_t{2}, std::size_t{1}}) {
                if (i + span > words.size()) continue;
                std::string phrase = words[i];
                if (span == 2) phrase += ' ' + words[i + 1];
                const auto& all = lexicon();
                const auto found = std::find_if(all.begin(), all.end(), [&](const LabelMapping& m) { return m.source_label == phrase; });
                if (found == all.end()) continue;
                std::string before;
                for (std::size_t j = i >= 3 ? i - 3 : 0; j < i; ++j) before += (before.empty() ? "" : " ") + words[j];
                if (!before.empty() && matches(rules.own_feeling, before)) break;
                const std::string label(found->emotion);
                if (std::find(check.feelings.begin(), check.feelings.end(), label) == check.feelings.end()) check.feelings.push_back(label);
                break;
            }
        }
    }
    check.named_feeling = !check.feelings.empty();
    check.repetition_loop = repetition_loop(parts, words_of(text));
    return check;
}

bool feelings_match(std::span<const std::string> named, std::span<const std::string> expected) {
    for (const std::string& a : named) {
        for (const std::string& b : expected) {
            if (a == b) return true;
            const auto ia = emotion_index(a), ib = emotion_index(b);
            if (!ia || !ib) continue;
            const ValenceArousal va = emotion_labels()[*ia].va, vb = emotion_labels()[*ib].va;
            if (std::hypot(va.valence - vb.valence, va.arousal - vb.arousal) <= 0.4) return true;
        }
    }
    return false;
}

}  // namespace kindred::data
