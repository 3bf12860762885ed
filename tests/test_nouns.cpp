// Noun tagging (method.md §3) and the WordNet reader under it: morphy,
// lookups, Wu–Palmer similarity, errors on a missing or corrupt database, and
// the `mmneuron nouns` command. Needs Debian's wordnet-base (or MMN_WORDNET_DIR).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "neurons/nouns.h"
#include "neurons/wordnet.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;
using mmn::Pos;
using mmn::WordNet;
using namespace mmn::test;

namespace {

const WordNet& wn() {
  static const WordNet w = WordNet::load();
  return w;
}

std::vector<std::string> surfaces(const std::string& text) {
  std::vector<std::string> out;
  for (auto& n : mmn::find_nouns(wn(), text)) out.push_back(n.surface);
  return out;
}

std::vector<std::string> lemmas(const std::string& text) {
  std::vector<std::string> out;
  for (auto& n : mmn::find_nouns(wn(), text)) out.push_back(n.lemma);
  return out;
}

using V = std::vector<std::string>;

// Sets an environment variable for one scope.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const std::string& n, const std::string& v) : name(n) {
    if (const char* o = std::getenv(n.c_str())) old = o;
    ::setenv(n.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old) ::setenv(name.c_str(), old->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
};

// A copy of the real database in a temp dir, to damage.
fs::path copy_wordnet(const std::string& tag) {
  fs::path d = temp_dir("wordnet-" + tag);
  for (auto& e : fs::directory_iterator(WordNet::default_dir())) fs::copy(e.path(), d / e.path().filename());
  return d;
}

std::string load_error(const std::string& dir) {
  try {
    WordNet::load(dir);
  } catch (const mmn::Error& e) {
    return e.what();
  }
  return "";
}

// --- captions ---

TEST(Nouns, Captions) {
  EXPECT_EQ(surfaces("a man riding a horse on a beach"), (V{"man", "horse", "beach"}));
  EXPECT_EQ(surfaces("two dogs playing with a frisbee"), (V{"dogs", "frisbee"}));
  EXPECT_EQ(surfaces("people walking in the rain"), (V{"people", "rain"}));
  EXPECT_EQ(surfaces("a big red circle on the left and a small blue triangle"), (V{"circle", "triangle"}));
  EXPECT_EQ(surfaces("a plate of food with pizza and salad"), (V{"plate", "food", "pizza", "salad"}));
  EXPECT_EQ(surfaces("children flying kites in a park"), (V{"children", "kites", "park"}));
  EXPECT_EQ(surfaces("a woman holding an umbrella"), (V{"woman", "umbrella"}));
  EXPECT_EQ(surfaces("geese on the lake"), (V{"geese", "lake"}));
  EXPECT_EQ(surfaces("mice"), (V{"mice"}));
}

TEST(Nouns, LemmasOfIrregularPlurals) {
  EXPECT_EQ(lemmas("geese on the lake"), (V{"goose", "lake"}));
  EXPECT_EQ(lemmas("mice"), (V{"mouse"}));
  EXPECT_EQ(lemmas("children flying kites in a park"), (V{"child", "kite", "park"}));
  EXPECT_EQ(lemmas("two men and three women"), (V{"man", "woman"}));
  EXPECT_EQ(lemmas("a flock of sheep and some oxen"), (V{"flock", "sheep", "ox"}));
  EXPECT_EQ(lemmas("teeth and feet"), (V{"tooth", "foot"}));
  EXPECT_EQ(lemmas("boxes, dishes, wolves and buses"), (V{"box", "dish", "wolf", "bus"}));
  EXPECT_EQ(lemmas("strawberries with cherries"), (V{"strawberry", "cherry"}));
}

TEST(Nouns, PunctuationAndCase) {
  EXPECT_EQ(surfaces("A Man riding a HORSE, on a beach!"), (V{"Man", "HORSE", "beach"}));
  EXPECT_EQ(lemmas("A Man riding a HORSE, on a beach!"), (V{"man", "horse", "beach"}));
  EXPECT_EQ(surfaces("The dog's toys are on the floor."), (V{"dog", "toys", "floor"}));
  EXPECT_EQ(surfaces("\"Dogs\" (and cats) -- on the sofa..."), (V{"Dogs", "cats", "sofa"}));
  EXPECT_EQ(surfaces("a cat\xE2\x80\x99s bowl \xE2\x80\x94 empty"), (V{"cat", "bowl"}));  // ’ and —
  EXPECT_EQ(surfaces(""), V{});
  EXPECT_EQ(surfaces("  ...  !!! "), V{});
}

TEST(Nouns, Numbers) {
  EXPECT_EQ(surfaces("two dogs and 3 cats"), (V{"dogs", "cats"}));
  EXPECT_EQ(surfaces("the first car and the second bus"), (V{"car", "bus"}));
  EXPECT_EQ(surfaces("one hundred balloons and twenty-one candles in 2019"), (V{"balloons", "candles"}));
  EXPECT_EQ(surfaces("The 2 cats sleep on 3rd floor."), (V{"cats", "floor"}));
}

TEST(Nouns, StopListAndPictureWords) {
  EXPECT_EQ(surfaces("a picture of a cat"), (V{"cat"}));
  EXPECT_EQ(surfaces("a photo of a dog in the image"), (V{"dog"}));
  EXPECT_EQ(surfaces("a close-up of a cat's face"), (V{"cat", "face"}));
  EXPECT_EQ(surfaces("In the image, there is a group of people standing around a table with laptops."),
            (V{"people", "table", "laptops"}));
  EXPECT_EQ(surfaces("it is in the box and he is at home"), (V{"box", "home"}));
  EXPECT_TRUE(mmn::is_noun_stop_word("the"));
  EXPECT_TRUE(mmn::is_noun_stop_word("it"));
  EXPECT_TRUE(mmn::is_noun_stop_word("photo"));
  EXPECT_TRUE(mmn::is_noun_stop_word("twenty-one"));
  EXPECT_TRUE(mmn::is_noun_stop_word("42"));
  EXPECT_FALSE(mmn::is_noun_stop_word("dog"));
}

TEST(Nouns, EachLemmaOnceInCaptionOrder) {
  auto n = mmn::find_nouns(wn(), "a dog chasing two dogs and a cat near a dog house");
  ASSERT_EQ(n.size(), 3u);
  EXPECT_EQ(n[0].surface, "dog");
  EXPECT_EQ(n[1].surface, "cat");
  EXPECT_EQ(n[2].surface, "house");
}

TEST(Nouns, OtherPartsOfSpeechExcluded) {
  // Verbs, adjectives and adverbs that WordNet also lists as nouns.
  EXPECT_EQ(surfaces("a man walks down the street"), (V{"man", "street"}));
  EXPECT_EQ(surfaces("The image features a dog sitting on a couch."), (V{"dog", "couch"}));
  EXPECT_EQ(surfaces("Two people walk on the beach."), (V{"people", "beach"}));
  EXPECT_EQ(surfaces("A red and white bus driving down the street."), (V{"bus", "street"}));
  EXPECT_EQ(surfaces("an orange cat sleeps on a pillow"), (V{"cat", "pillow"}));
  EXPECT_EQ(surfaces("a very happy girl runs quickly"), (V{"girl"}));
}

TEST(Nouns, NounsWhoseVerbIsMoreFrequent) {
  // SemCor has more verb than noun uses of these; a determiner shows the noun.
  EXPECT_EQ(surfaces("A train on the tracks near a station."), (V{"train", "tracks", "station"}));
  EXPECT_EQ(surfaces("A stop sign on the corner of a street."), (V{"sign", "corner", "street"}));
  EXPECT_EQ(surfaces("A teddy bear sitting on a bed."), (V{"teddy", "bear", "bed"}));
  EXPECT_EQ(surfaces("A man swinging a baseball bat at a ball."), (V{"man", "baseball", "bat", "ball"}));
  EXPECT_EQ(surfaces("A man wearing a suit and tie."), (V{"man", "suit", "tie"}));
  EXPECT_EQ(surfaces("A kitchen with a stove, a sink, and a refrigerator."),
            (V{"kitchen", "stove", "sink", "refrigerator"}));
  EXPECT_EQ(surfaces("Someone is holding a can of soda."), (V{"can", "soda"}));
  EXPECT_EQ(surfaces("A dog that can jump."), (V{"dog"}));
}

TEST(Nouns, Hyphenated) {
  EXPECT_EQ(surfaces("a boy wearing a t-shirt"), (V{"boy", "t-shirt"}));
  EXPECT_EQ(surfaces("a dog catches a frisbee in mid-air"), (V{"dog", "frisbee", "mid-air"}));
  // Unknown whole: split into parts.
  EXPECT_EQ(surfaces("a zebra-giraffe hybrid"), (V{"zebra", "giraffe", "hybrid"}));
  // Known whole as an adjective: not a noun, not split.
  EXPECT_EQ(surfaces("a state-of-the-art kitchen"), (V{"kitchen"}));
}

TEST(Nouns, LongerCaption) {
  EXPECT_EQ(surfaces("The image shows a large brown dog lying on a wooden floor next to a red ball. The dog appears "
                     "to be relaxed, and there are several toys scattered around it."),
            (V{"dog", "floor", "ball", "toys"}));
  EXPECT_EQ(surfaces("The scene depicts a busy city street with cars, buses, and pedestrians. Tall buildings line "
                     "both sides of the road."),
            (V{"city", "street", "cars", "buses", "pedestrians", "buildings", "road"}));
}

// --- split_caption ---

TEST(Nouns, SplitCaption) {
  auto w = mmn::split_caption("The dog's ball, a T-Shirt -- and 'quotes'.");
  std::vector<std::string> s, l;
  for (auto& x : w) s.push_back(x.surface), l.push_back(x.lower);
  EXPECT_EQ(s, (V{"The", "dog", "ball", "a", "T-Shirt", "and", "quotes"}));
  EXPECT_EQ(l, (V{"the", "dog", "ball", "a", "t-shirt", "and", "quotes"}));
  EXPECT_EQ(w[2].punct_after, ',');
  EXPECT_EQ(w[0].punct_after, 0);
}

// --- morphy and lookups ---

TEST(WordNet, MorphyNouns) {
  EXPECT_EQ(wn().morphy("dogs", Pos::Noun), (V{"dog"}));
  EXPECT_EQ(wn().morphy("geese", Pos::Noun), (V{"goose"}));
  EXPECT_EQ(wn().morphy("mice", Pos::Noun), (V{"mouse"}));
  EXPECT_EQ(wn().morphy("churches", Pos::Noun), (V{"church"}));
  EXPECT_EQ(wn().morphy("boxes", Pos::Noun), (V{"box"}));
  EXPECT_EQ(wn().morphy("ladies", Pos::Noun), (V{"lady"}));
  EXPECT_EQ(wn().morphy("firemen", Pos::Noun), (V{"fireman"}));
  EXPECT_EQ(wn().morphy("glass", Pos::Noun), (V{"glass"}));  // "ss": no detachment
  EXPECT_EQ(wn().morphy("Dog", Pos::Noun), (V{"dog"}));
  EXPECT_EQ(wn().morphy("hot dog", Pos::Noun), (V{"hot_dog"}));
  // Exception list first; the word itself when it is a lemma too.
  auto men = wn().morphy("men", Pos::Noun);
  EXPECT_NE(std::find(men.begin(), men.end(), "man"), men.end());
  EXPECT_EQ(mmn::noun_lemma(wn(), "men"), "man");
  EXPECT_EQ(mmn::noun_lemma(wn(), "glasses"), "glass");
  EXPECT_EQ(mmn::noun_lemma(wn(), "quickly"), "");
  EXPECT_TRUE(wn().morphy("xyzzyq", Pos::Noun).empty());
  EXPECT_TRUE(wn().morphy("", Pos::Noun).empty());
}

TEST(WordNet, MorphyOtherPos) {
  EXPECT_EQ(wn().morphy("riding", Pos::Verb), (V{"ride", "rid"}));  // every rule that gives a lemma
  EXPECT_EQ(wn().morphy("walked", Pos::Verb), (V{"walk"}));
  EXPECT_EQ(wn().morphy("flies", Pos::Verb), (V{"fly"}));
  EXPECT_EQ(wn().morphy("left", Pos::Verb), (V{"leave"}));  // verb.exc
  EXPECT_EQ(wn().morphy("running", Pos::Verb), (V{"run"}));
  EXPECT_EQ(wn().morphy("bigger", Pos::Adj), (V{"bigger", "big"}));  // "bigger" is an adjective lemma too
  EXPECT_EQ(wn().morphy("nicest", Pos::Adj), (V{"nice"}));
  auto better = wn().morphy("better", Pos::Adj);
  EXPECT_NE(std::find(better.begin(), better.end(), "good"), better.end());  // adj.exc
  EXPECT_TRUE(wn().morphy("dogs", Pos::Adv).empty());
}

TEST(WordNet, Lookup) {
  const mmn::LemmaEntry* dog = wn().lookup("dog", Pos::Noun);
  ASSERT_NE(dog, nullptr);
  EXPECT_EQ(dog->synset_cnt, 7);
  EXPECT_EQ(dog->offsets.size(), 7u);
  EXPECT_EQ(dog->offsets[0], 2084071u);
  EXPECT_GT(dog->tag_count, 0);
  EXPECT_GE(dog->tagsense_cnt, 1);
  const mmn::LemmaEntry* dogv = wn().lookup("dog", Pos::Verb);
  ASSERT_NE(dogv, nullptr);
  EXPECT_EQ(dogv->synset_cnt, 1);
  EXPECT_EQ(wn().lookup("dog", Pos::Adv), nullptr);
  EXPECT_TRUE(wn().known("Hot Dog"));
  EXPECT_FALSE(wn().known("xyzzyq"));
}

// --- Wu–Palmer ---

TEST(WordNet, WupSimilarity) {
  auto dog = wn().noun_synsets("dog"), cat = wn().noun_synsets("cat");
  ASSERT_FALSE(dog.empty());
  ASSERT_FALSE(cat.empty());
  EXPECT_EQ(wn().noun_synset_name(dog[0]), "dog.n.01");
  EXPECT_EQ(wn().noun_synset_name(cat[0]), "cat.n.01");
  // NLTK: wn.synset('dog.n.01').wup_similarity(wn.synset('cat.n.01')) == 0.857142...
  EXPECT_NEAR(wn().synset_wup(dog[0], cat[0]), 6.0 / 7.0, 1e-12);
  EXPECT_DOUBLE_EQ(wn().synset_wup(dog[0], dog[0]), 1.0);
  // entity.n.01 vs dog.n.01: lcs = entity (depth 1), dog is 8 edges below it.
  auto entity = wn().noun_synsets("entity");
  EXPECT_NEAR(wn().synset_wup(entity[0], dog[0]), 2.0 / 10.0, 1e-12);

  auto dc = wn().wup_similarity("dog", "cat"), dcar = wn().wup_similarity("dog", "car");
  ASSERT_TRUE(dc && dcar);
  EXPECT_GT(*dc, *dcar);
  EXPECT_DOUBLE_EQ(*wn().wup_similarity("dog", "dog"), 1.0);
  EXPECT_DOUBLE_EQ(*wn().wup_similarity("dogs", "Dog"), 1.0);
  EXPECT_GT(*wn().wup_similarity("horse", "zebra"), *wn().wup_similarity("horse", "umbrella"));
  for (auto [a, b] : {std::pair{"pizza", "salad"}, {"beach", "ocean"}, {"man", "woman"}}) {
    auto s = wn().wup_similarity(a, b);
    ASSERT_TRUE(s) << a << " " << b;
    EXPECT_GT(*s, 0.0);
    EXPECT_LE(*s, 1.0);
    EXPECT_DOUBLE_EQ(*s, *wn().wup_similarity(b, a));
  }
  EXPECT_FALSE(wn().wup_similarity("xyzzyq", "dog"));
  EXPECT_FALSE(wn().wup_similarity("dog", "quickly"));
}

// --- errors ---

TEST(WordNet, ErrorOnEmptyDir) {
  fs::path d = temp_dir("wordnet-empty");
  {
    ScopedEnv env("MMN_WORDNET_DIR", d.string());
    EXPECT_EQ(WordNet::default_dir(), d.string());
    try {
      WordNet::load();
      FAIL() << "expected mmn::Error";
    } catch (const mmn::Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find((d / "index.noun").string()), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  fs::remove_all(d);
}

TEST(WordNet, ErrorOnMissingDir) {
  std::string msg = load_error("/nonexistent/wordnet-dir");
  EXPECT_NE(msg.find("/nonexistent/wordnet-dir"), std::string::npos) << msg;
}

TEST(WordNet, ErrorOnMissingOrCorruptFiles) {
  fs::path d = copy_wordnet("corrupt");
  fs::remove(d / "verb.exc");
  std::string msg = load_error(d.string());
  EXPECT_NE(msg.find("verb.exc"), std::string::npos) << msg;

  fs::copy(fs::path(WordNet::default_dir()) / "verb.exc", d / "verb.exc");
  {
    std::ofstream f(d / "index.adv", std::ios::app);
    f << "broken r 3 0 1 1 00000001\n";  // 3 synsets promised, 1 given
  }
  msg = load_error(d.string());
  EXPECT_NE(msg.find("index.adv"), std::string::npos) << msg;
  EXPECT_NE(msg.find("malformed"), std::string::npos) << msg;

  fs::copy(fs::path(WordNet::default_dir()) / "index.adv", d / "index.adv", fs::copy_options::overwrite_existing);
  { std::ofstream f(d / "cntlist.rev", std::ios::trunc); }
  msg = load_error(d.string());
  EXPECT_NE(msg.find("cntlist.rev"), std::string::npos) << msg;

  // data.noun is read lazily: a damaged one fails on the first similarity query.
  fs::copy(fs::path(WordNet::default_dir()) / "cntlist.rev", d / "cntlist.rev", fs::copy_options::overwrite_existing);
  { std::ofstream f(d / "data.noun", std::ios::trunc) ; f << "garbage\n"; }
  WordNet w = WordNet::load(d.string());
  EXPECT_EQ(mmn::find_nouns(w, "a dog")[0].lemma, "dog");  // tagging needs no data file
  try {
    w.wup_similarity("dog", "cat");
    FAIL() << "expected mmn::Error";
  } catch (const mmn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.noun"), std::string::npos) << e.what();
  }
  fs::remove_all(d);
}

// --- CLI ---

TEST(Nouns, Cli) {
  std::string out;
  ASSERT_EQ(run_cmd(binary() + " nouns 'a man riding a horse on a beach' 'two dogs playing with a frisbee' 'the'", &out),
            0)
      << out;
  // stdout: the JSON (first line); stderr: the text without a noun, named.
  auto j = nlohmann::json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(j, nlohmann::json::parse(R"([["man","horse","beach"],["dogs","frisbee"],[]])"));
  EXPECT_NE(out.find("warning: nouns: text 3 \"the\" has no noun"), std::string::npos) << out;

  ASSERT_EQ(run_cmd(binary() + " nouns --lemmas 'geese and mice'", &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out), nlohmann::json::parse(R"([["goose","mouse"]])"));

  fs::path d = temp_dir("wordnet-cli");
  int rc = run_cmd("MMN_WORDNET_DIR=" + d.string() + " " + binary() + " nouns 'a dog'", &out);
  EXPECT_NE(rc, 0);
  EXPECT_EQ(out.rfind("error: ", 0), 0u) << out;
  EXPECT_NE(out.find("index.noun"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  fs::remove_all(d);

  rc = run_cmd(binary() + " nouns", &out);
  EXPECT_NE(rc, 0);
}

}  // namespace
