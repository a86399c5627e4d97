#include "rules/yaml_load.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <istream>
#include <limits>
#include <streambuf>
#include <vector>

namespace hallpass::rules {

namespace {

constexpr std::uint64_t saturated = std::numeric_limits<std::uint64_t>::max();

std::uint64_t plus(std::uint64_t a, std::uint64_t b) {
  return a > saturated - b ? saturated : a + b;
}
std::uint64_t times(std::uint64_t a, std::uint64_t b) {
  return b != 0 && a > saturated / b ? saturated : a * b;
}

// An istream over text it does not copy (yaml-cpp only reads it), for both passes.
class view_buffer : public std::streambuf {
 public:
  explicit view_buffer(std::string_view text) {
    char* p = const_cast<char*>(text.data());
    setg(p, p, p + text.size());
  }
};

// yaml-cpp's parse events, summed. Each list or mapping is open on `open_` until its end and
// adds its expanded size to its parent's; an anchored node's expanded size is kept under its
// anchor's id (yaml-cpp numbers anchors 1, 2, ... as it registers them, a redefined name
// getting a new id) for the aliases that name it.
class size_counter : public YAML::EventHandler {
 public:
  const yaml_size& size() const { return size_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnAnchor(const YAML::Mark&, const std::string& name) override { anchor_name_ = name; }

  void OnNull(const YAML::Mark&, YAML::anchor_t anchor) override { leaf(anchor, 0); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    leaf(anchor, value.size());
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // yaml-cpp registers an anchor before reading the node it names, and builds `&a [*a]` as
    // a list that holds itself: every walk over it would recurse for ever.
    if (anchor >= anchors_.size() || !anchors_[anchor].complete) {
      const std::string name = anchor < anchors_.size() ? anchors_[anchor].name : std::string();
      throw yaml_too_large(mark, "the alias *" + name + " is inside the node its anchor &" + name +
                                     " names: a node cannot hold itself");
    }
    const anchored& a = anchors_[anchor];
    size_.nodes = plus(size_.nodes, 1);
    if (a.nodes > size_.most_nodes.nodes) size_.most_nodes = {a.name, mark, a.nodes, a.bytes};
    if (a.bytes > size_.most_bytes.bytes) size_.most_bytes = {a.name, mark, a.nodes, a.bytes};
    add_to_parent(a.nodes, a.bytes);
  }

  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(anchor);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct anchored {
    std::string name;
    std::uint64_t nodes = 0;
    std::uint64_t bytes = 0;
    bool complete = false;  // false while the list or mapping it names is still being read
  };
  struct collection {
    YAML::anchor_t anchor = YAML::NullAnchor;
    std::uint64_t nodes = 1;  // itself
    std::uint64_t bytes = 0;
  };

  anchored& register_anchor(YAML::anchor_t anchor) {
    if (anchor >= anchors_.size()) anchors_.resize(anchor + 1);
    anchored& a = anchors_[anchor];
    a.name = std::move(anchor_name_);
    anchor_name_.clear();
    return a;
  }

  void leaf(YAML::anchor_t anchor, std::uint64_t bytes) {
    size_.nodes = plus(size_.nodes, 1);
    size_.bytes = plus(size_.bytes, bytes);
    if (anchor != YAML::NullAnchor) {
      anchored& a = register_anchor(anchor);
      a.nodes = 1;
      a.bytes = bytes;
      a.complete = true;
    }
    add_to_parent(1, bytes);
  }

  void open(YAML::anchor_t anchor) {
    size_.nodes = plus(size_.nodes, 1);
    if (anchor != YAML::NullAnchor) register_anchor(anchor);
    open_.push_back({anchor});  // at most yaml-cpp's depth (500): it refuses deeper
    size_.depth = std::max(size_.depth, static_cast<int>(open_.size()));
  }

  void close() {
    const collection c = open_.back();
    open_.pop_back();
    if (c.anchor != YAML::NullAnchor) {
      anchored& a = anchors_[c.anchor];
      a.nodes = c.nodes;
      a.bytes = c.bytes;
      a.complete = true;
    }
    add_to_parent(c.nodes, c.bytes);
  }

  void add_to_parent(std::uint64_t nodes, std::uint64_t bytes) {
    std::uint64_t& to_nodes = open_.empty() ? size_.expanded_nodes : open_.back().nodes;
    std::uint64_t& to_bytes = open_.empty() ? size_.expanded_bytes : open_.back().bytes;
    to_nodes = plus(to_nodes, nodes);
    to_bytes = plus(to_bytes, bytes);
  }

  yaml_size size_;
  std::vector<collection> open_;
  std::vector<anchored> anchors_;  // by anchor id; [0] unused (YAML::NullAnchor)
  std::string anchor_name_;        // from OnAnchor, for the node event that follows it
};

std::string number(std::uint64_t n) {
  return n == saturated ? "more than " + std::to_string(saturated) : std::to_string(n);
}

}  // namespace

yaml_size measure_yaml(std::string_view text) {
  view_buffer buffer(text);
  std::istream in(&buffer);
  YAML::Parser parser(in);
  size_counter counter;
  parser.HandleNextDocument(counter);  // the first document only, as YAML::Load
  return counter.size();
}

std::optional<yaml_refusal> check_yaml_size(const yaml_size& size, const yaml_limits& limits) {
  const std::uint64_t max_nodes = plus(times(size.nodes, limits.node_factor), limits.extra_nodes);
  if (size.expanded_nodes > max_nodes) {
    const auto& a = size.most_nodes;
    return yaml_refusal{
        a.mark, "the policy expands to more than " + std::to_string(max_nodes) +
                    " nodes through YAML aliases (anchors): its " + std::to_string(size.nodes) +
                    " nodes (values, lists, mappings) become " + number(size.expanded_nodes) +
                    " with each alias read as the node its anchor names (*" + a.name +
                    " here stands for " + number(a.nodes) + " nodes); hallpass reads at most " +
                    std::to_string(limits.node_factor) + " times a file's own nodes plus " +
                    std::to_string(limits.extra_nodes) +
                    ". Name a list by its category instead of an alias, or put a long one in a "
                    "list file (domain_files)"};
  }
  const std::uint64_t max_bytes = plus(times(size.bytes, limits.byte_factor), limits.extra_bytes);
  if (size.expanded_bytes > max_bytes) {
    const auto& a = size.most_bytes;
    return yaml_refusal{
        a.mark, "the policy expands to more than " + std::to_string(max_bytes) +
                    " bytes of text through YAML aliases (anchors): its " +
                    std::to_string(size.bytes) + " bytes of keys and values become " +
                    number(size.expanded_bytes) +
                    " with each alias read as the node its anchor names (*" + a.name +
                    " here stands for " + number(a.bytes) + " bytes); hallpass reads at most " +
                    std::to_string(limits.byte_factor) + " times a file's own plus " +
                    std::to_string(limits.extra_bytes) +
                    ". Write a long text out where it is needed instead of naming it by an alias"};
  }
  return std::nullopt;
}

std::optional<YAML::Mark> second_document(std::string_view text) {
  bool content = false;  // a line of the first document's content has been seen
  bool ended = false;    // its "..." has been seen
  int line = 0;
  for (std::size_t pos = 0; pos < text.size(); ++line) {
    const std::size_t line_start = pos;
    const std::size_t nl = text.find('\n', pos);
    std::string_view l = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (line == 0 && l.starts_with("\xEF\xBB\xBF")) l.remove_prefix(3);  // a byte-order mark
    const bool marker = l.size() >= 3 && (l.starts_with("---") || l.starts_with("...")) &&
                        (l.size() == 3 || l[3] == ' ' || l[3] == '\t');
    std::string_view rest = marker ? l.substr(3) : l;
    const auto first = rest.find_first_not_of(" \t");
    const bool has_content = first != std::string_view::npos && rest[first] != '#' && !(!marker && l[0] == '%');
    YAML::Mark at;
    at.line = line;
    at.pos = static_cast<int>(std::min<std::size_t>(line_start, std::numeric_limits<int>::max()));
    if (marker && l[0] == '-') {
      if (content || ended) return at;
    } else if (marker) {
      ended = true;
      continue;
    } else if (has_content && ended) {
      return at;
    }
    if (has_content) content = true;
  }
  return std::nullopt;
}

YAML::Node load_yaml(std::string_view text, const yaml_limits& limits) {
  try {
    const bool may_have_aliases =
        text.find('*') != std::string_view::npos && text.find('&') != std::string_view::npos;
    if (may_have_aliases) {
      if (const auto refused = check_yaml_size(measure_yaml(text), limits)) {
        throw yaml_too_large(refused->mark, refused->message);
      }
    }
    // Only one document: a second would be silently ignored (policy audit, 2026-12-05: rules
    // pasted after a `---` never applied, and a `listen:` there was not read).
    if (const auto second = second_document(text)) {
      throw yaml_more_documents(*second, "a second YAML document begins here (after '---' or '...'), and hallpass "
                                         "reads one: remove the marker so that what follows is part of the policy, "
                                         "or delete what follows it");
    }
    view_buffer buffer(text);
    std::istream in(&buffer);
    return YAML::Load(in);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp says only "bad file" (100,000 '[' are refused so, at the 500th level).
    throw yaml_too_large(
        e.mark, "the policy nests lists and mappings deeper than yaml-cpp reads (it stops at " +
                    std::to_string(e.depth()) + " levels); a policy needs fewer than 10");
  }
}

}  // namespace hallpass::rules
