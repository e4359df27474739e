// Recipes: overrides of nested keys and lists, typed reads, unknown keys with line and suggestion,
// wrong types, missing files, hostile documents, and a resolved dump that reloads to the same values.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/config.h"
#include "core/error.h"

namespace kindred {
namespace {

constexpr const char* kRecipe =
    "name: smoke\n"              // line 1
    "optim:\n"                   // line 2
    "  lr: 2.0e-4\n"             // line 3
    "  weight_decay: 0.0\n"      // line 4
    "  betas: [0.9, 0.999]\n"    // line 5
    "lora:\n"                    // line 6
    "  rank: 8\n"                // line 7
    "  targets: [q, v]\n"        // line 8
    "data:\n"                    // line 9
    "  sources:\n"               // line 10
    "    - path: a.jsonl\n"      // line 11
    "      weight: 1\n"          // line 12
    "    - path: b.jsonl\n"      // line 13
    "      weight: 3\n"          // line 14
    "train:\n"                   // line 15
    "  steps: 100\n"             // line 16
    "  bf16: true\n";            // line 17

std::string error_of(const std::function<void()>& action) {
    try {
        action();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

// Reads every key of kRecipe the way a trainer would.
struct Read {
    std::string name;
    double lr = 0, weight_decay = 0;
    std::vector<double> betas;
    int rank = 0;
    std::vector<std::string> targets;
    std::vector<std::string> paths;
    std::vector<std::int64_t> weights;
    std::int64_t steps = 0;
    bool bf16 = false;
    int warmup = 0;
};

Read read_all(Config& config) {
    Read r;
    r.name = config.get<std::string>("name");
    r.lr = config.get<double>("optim.lr");
    r.weight_decay = config.get<double>("optim.weight_decay", 0.01);
    r.betas = config.get<std::vector<double>>("optim.betas");
    r.rank = config.get<int>("lora.rank");
    r.targets = config.get<std::vector<std::string>>("lora.targets");
    for (std::size_t i = 0; i < config.size("data.sources"); ++i) {
        r.paths.push_back(config.get<std::string>(fmt::format("data.sources.{}.path", i)));
        r.weights.push_back(config.get<std::int64_t>(fmt::format("data.sources.{}.weight", i), 1));
    }
    r.steps = config.get<std::int64_t>("train.steps");
    r.bf16 = config.get<bool>("train.bf16", false);
    r.warmup = config.get<int>("train.warmup", 10);
    return r;
}

TEST(Config, ReadsTypedValuesAndDefaults) {
    Config config = Config::parse(kRecipe, "recipe.yaml");
    const Read r = read_all(config);
    EXPECT_EQ(r.name, "smoke");
    EXPECT_DOUBLE_EQ(r.lr, 2e-4);
    EXPECT_DOUBLE_EQ(r.weight_decay, 0.0);  // present, so not the default
    EXPECT_EQ(r.betas, (std::vector<double>{0.9, 0.999}));
    EXPECT_EQ(r.rank, 8);
    EXPECT_EQ(r.targets, (std::vector<std::string>{"q", "v"}));
    EXPECT_EQ(r.paths, (std::vector<std::string>{"a.jsonl", "b.jsonl"}));
    EXPECT_EQ(r.weights, (std::vector<std::int64_t>{1, 3}));
    EXPECT_EQ(r.steps, 100);
    EXPECT_TRUE(r.bf16);
    EXPECT_EQ(r.warmup, 10);
    EXPECT_NO_THROW(config.finish());
    EXPECT_EQ(config.keys("optim"), (std::vector<std::string>{"lr", "weight_decay", "betas"}));
    EXPECT_TRUE(config.has("train.warmup"));  // the default used is now part of the resolved tree
    EXPECT_FALSE(config.has("train.nothing"));
}

TEST(Config, OverridesNestedKeysListsAndQuotedStrings) {
    Config config = Config::parse(kRecipe, "recipe.yaml");
    config.apply_overrides({"optim.lr=1e-3", "lora.targets=[q,k,v,o]", "name=\"x y\"", "data.sources.1.weight=5",
                            "train.warmup=7", "optim.betas=[0.8, 0.95]"});
    const Read r = read_all(config);
    EXPECT_DOUBLE_EQ(r.lr, 1e-3);
    EXPECT_EQ(r.targets, (std::vector<std::string>{"q", "k", "v", "o"}));
    EXPECT_EQ(r.name, "x y");
    EXPECT_EQ(r.weights, (std::vector<std::int64_t>{1, 5}));
    EXPECT_EQ(r.warmup, 7);  // a key the recipe lacks, read with a default: accepted
    EXPECT_EQ(r.betas, (std::vector<double>{0.8, 0.95}));
    EXPECT_NO_THROW(config.finish());
    EXPECT_EQ(config.where("optim.lr"), "override 'optim.lr=1e-3'");
}

TEST(Config, OverrideCreatesSectionsAndReplacesSubtrees) {
    Config config = Config::parse("a: 1\n", "r.yaml");
    config.apply_override("eval.every=50");
    config.apply_override("sched={kind: cosine, warmup: 3}");
    config.apply_override("note=");  // empty value is null: the default applies
    EXPECT_EQ(config.get<int>("a"), 1);
    EXPECT_EQ(config.get<int>("eval.every"), 50);
    EXPECT_EQ(config.get<std::string>("sched.kind"), "cosine");
    EXPECT_EQ(config.get<int>("sched.warmup"), 3);
    EXPECT_EQ(config.get<std::string>("note", "none"), "none");
    EXPECT_NO_THROW(config.finish());
}

TEST(Config, MalformedOverridesNameTheAssignment) {
    Config config = Config::parse(kRecipe, "recipe.yaml");
    EXPECT_EQ(error_of([&] { config.apply_override("optim.lr"); }), "override 'optim.lr': expected key=value");
    EXPECT_EQ(error_of([&] { config.apply_override("optim..lr=1"); }),
              "override 'optim..lr=1': bad key 'optim..lr' (empty segment)");
    EXPECT_EQ(error_of([&] { config.apply_override("name.first=1"); }),
              "override 'name.first=1': 'name' is 'smoke', not a mapping, so it has no key 'first'");
    EXPECT_EQ(error_of([&] { config.apply_override("data.sources.2.weight=1"); }),
              "override 'data.sources.2.weight=1': 'data.sources' is a sequence of 2 elements; '2' is not an index in it");
    EXPECT_NE(error_of([&] { config.apply_override("lr=[1,"); }).find("override 'lr=[1,': invalid YAML value"),
              std::string::npos);
}

TEST(Config, UnknownKeyNamesLineAndSuggestsNearestKey) {
    Config config = Config::parse(std::string(kRecipe) + "optim_typo: 1\n", "configs/x.yaml");
    config.apply_override("optim.lrr=3");
    read_all(config);
    EXPECT_EQ(error_of([&] { config.finish(); }),
              "unknown key 'optim.lrr' in override 'optim.lrr=3' (did you mean 'optim.lr'?); "
              "unknown key 'optim_typo' in configs/x.yaml line 18");
}

TEST(Config, UnknownKeyInFileHasItsLine) {
    Config config = Config::parse("optim:\n  lr: 1\n  wieght_decay: 0.1\n", "configs/x.yaml");
    config.get<double>("optim.lr");
    config.get<double>("optim.weight_decay", 0.0);
    EXPECT_EQ(error_of([&] { config.finish(); }),
              "unknown key 'optim.wieght_decay' in configs/x.yaml line 3 (did you mean 'optim.weight_decay'?)");
}

TEST(Config, UnreadSectionIsOneError) {
    Config config = Config::parse("a: 1\nextra:\n  b: 1\n  c: [1, 2]\n", "r.yaml");
    config.get<int>("a");
    EXPECT_EQ(error_of([&] { config.finish(); }), "unknown key 'extra' in r.yaml line 2");
}

TEST(Config, UnreadListElementIsReported) {
    Config config = Config::parse("s:\n  - {p: 1}\n  - {p: 2, q: 3}\n", "r.yaml");
    config.get<int>("s.0.p");
    config.get<int>("s.1.p");
    EXPECT_EQ(error_of([&] { config.finish(); }), "unknown key 's.1.q' in r.yaml line 3 (did you mean 's.1.p'?)");
}

TEST(Config, WrongTypesNameKeyFileLineAndExpectedType) {
    Config config = Config::parse("steps: 1.5\nlr: fast\nbf16: maybe\ntargets: q\nbig: 3000000000\nlist: [1, x]\nsub: {a: 1}\n",
                                  "configs/t.yaml");
    EXPECT_EQ(error_of([&] { config.get<std::int64_t>("steps"); }),
              "configs/t.yaml line 1: 'steps' must be an integer, got '1.5'");
    EXPECT_EQ(error_of([&] { config.get<double>("lr"); }), "configs/t.yaml line 2: 'lr' must be a number, got 'fast'");
    EXPECT_EQ(error_of([&] { config.get<bool>("bf16", false); }),
              "configs/t.yaml line 3: 'bf16' must be a boolean (true/false), got 'maybe'");
    EXPECT_EQ(error_of([&] { config.get<std::vector<std::string>>("targets"); }),
              "configs/t.yaml line 4: 'targets' must be a list of a string, got 'q'");
    EXPECT_EQ(error_of([&] { config.get<int>("big"); }),
              "configs/t.yaml line 5: 'big' must be an integer (32-bit), got '3000000000'");
    EXPECT_EQ(config.get<std::int64_t>("big"), 3000000000LL);
    EXPECT_EQ(error_of([&] { config.get<std::vector<std::int64_t>>("list"); }),
              "configs/t.yaml line 6: 'list.1' must be an integer, got 'x'");
    EXPECT_EQ(error_of([&] { config.get<std::string>("sub"); }), "configs/t.yaml line 7: 'sub' must be a string, got a mapping");
    EXPECT_EQ(error_of([&] { config.get<int>("missing"); }), "configs/t.yaml: missing required key 'missing'");
    EXPECT_EQ(error_of([&] { config.fail_at("steps", "must be positive"); }), "configs/t.yaml line 1: 'steps' must be positive");
}

TEST(Config, BadFilesAndDocuments) {
    EXPECT_EQ(error_of([] { Config::load("/nonexistent/recipe.yaml"); }),
              "/nonexistent/recipe.yaml: cannot open: No such file or directory");
    EXPECT_EQ(error_of([] { Config::parse("- a\n- b\n", "l.yaml"); }),
              "l.yaml: a recipe must be a mapping of keys to values, got a sequence");
    EXPECT_EQ(error_of([] { Config::parse("a: 1\nb: 2\na: 3\n", "d.yaml"); }), "d.yaml line 3: duplicate key 'a' (first at line 1)");
    EXPECT_NE(error_of([] { Config::parse("a: [1, 2\nb: 3\n", "bad.yaml"); }).find("bad.yaml line "), std::string::npos);
    EXPECT_EQ(error_of([] { Config::parse("a:\n  x.y: 1\n", "dot.yaml"); }),
              "dot.yaml line 2: key 'x.y' under 'a' is empty or contains '.', which separates key paths");
    // Hostile documents: nesting past yaml-cpp's depth guard, and aliases whose expansion is huge.
    EXPECT_NE(error_of([] { Config::parse("a: " + std::string(100000, '['), "deep.yaml"); }).find("deep.yaml line 1: invalid YAML"),
              std::string::npos);
    std::string laughs = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int level = 1; level < 8; ++level) {
        laughs += fmt::format("l{0}: &l{0} [*l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}]\n", level,
                              level - 1);
    }
    EXPECT_EQ(error_of([&] { Config::parse(laughs, "laughs.yaml"); }),
              "laughs.yaml: more than 1048576 values (counting each use of an alias)");
    Config empty = Config::parse("", "empty.yaml");
    EXPECT_EQ(empty.get<int>("x", 4), 4);
    EXPECT_NO_THROW(empty.finish());
}

TEST(Config, ResolvedDumpReloadsIdentically) {
    Config config = Config::parse(kRecipe, "recipe.yaml");
    config.apply_overrides({"optim.lr=1e-3", "lora.targets=[q,k]", "name=\"a: b\"", "train.bf16=false"});
    const Read first = read_all(config);
    config.finish();
    const std::string dumped = config.dump();

    const auto path = std::filesystem::temp_directory_path() / "kindred_test_config_dump.yaml";
    {
        std::ofstream out(path);
        out << dumped;
    }
    Config reloaded = Config::load(path.string());
    std::filesystem::remove(path);
    const Read second = read_all(reloaded);
    EXPECT_NO_THROW(reloaded.finish());
    EXPECT_EQ(second.name, "a: b");
    EXPECT_EQ(second.name, first.name);
    EXPECT_EQ(second.lr, first.lr);
    EXPECT_EQ(second.weight_decay, first.weight_decay);
    EXPECT_EQ(second.betas, first.betas);
    EXPECT_EQ(second.rank, first.rank);
    EXPECT_EQ(second.targets, first.targets);
    EXPECT_EQ(second.paths, first.paths);
    EXPECT_EQ(second.weights, first.weights);
    EXPECT_EQ(second.steps, first.steps);
    EXPECT_EQ(second.bf16, first.bf16);
    EXPECT_EQ(second.warmup, first.warmup);
    EXPECT_NE(dumped.find("warmup: 10"), std::string::npos);  // the default is recorded
    EXPECT_EQ(reloaded.dump(), dumped);
}

TEST(Config, DefaultsOfEveryTypeRoundTrip) {
    Config config = Config::parse("", "r.yaml");
    config.get<double>("x.lr", 2e-4);
    config.get<double>("x.inf", std::numeric_limits<double>::infinity());
    config.get<std::string>("x.empty", "");
    config.get<std::string>("x.colon", "a: b");
    config.get<std::vector<double>>("x.v", {0.5, 1e-8});
    config.get<std::vector<std::string>>("x.none", {});
    config.get<bool>("x.flag", true);
    Config reloaded = Config::parse(config.dump(), "dump.yaml");
    EXPECT_EQ(reloaded.get<double>("x.lr"), 2e-4);
    EXPECT_EQ(reloaded.get<double>("x.inf"), std::numeric_limits<double>::infinity());
    EXPECT_EQ(reloaded.get<std::string>("x.empty"), "");
    EXPECT_EQ(reloaded.get<std::string>("x.colon"), "a: b");
    EXPECT_EQ(reloaded.get<std::vector<double>>("x.v"), (std::vector<double>{0.5, 1e-8}));
    EXPECT_EQ(reloaded.get<std::vector<std::string>>("x.none"), std::vector<std::string>{});
    EXPECT_TRUE(reloaded.get<bool>("x.flag"));
    EXPECT_NE(config.dump().find("lr: 0.0002"), std::string::npos);  // shortest digits, not 0.000200000000000000001
}

TEST(Config, EditDistance) {
    EXPECT_EQ(edit_distance("", ""), 0u);
    EXPECT_EQ(edit_distance("lr", "lrr"), 1u);
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
    EXPECT_EQ(edit_distance("abc", ""), 3u);
}

}  // namespace
}  // namespace kindred
