// Parsing the policy file's YAML with a bound on what its aliases expand to: the one way
// hallpass turns YAML text into a YAML::Node (the policy loader, the daemon's own sections, the
// state directory read before the policy).
//
// yaml-cpp keeps one node per anchor and lets every alias share it, so parsing is linear, but
// everything that then walks the tree (the loader reading a list, a rule, a reason) meets the
// anchored node again at every alias. Nested aliases ("billion laughs") multiply: a 783 KB
// policy of 30,000 categories naming one anchored 1,000-entry list cost `hallpass check` 28 s
// and 2.3 GB before it was refused (outside-in audit H, 2026-12-05), and ten levels of ten
// aliases would be 10^10 entries. load_yaml first runs yaml-cpp's event parser over the text,
// computes the size of the document with every alias expanded, and refuses it when that is
// far beyond what the file itself holds (yaml_limits; rules/README.md, "YAML aliases").
//
// Pure: no I/O, no state. Any thread; independent calls may run concurrently.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hallpass::rules {

// What a policy may expand to. A document may hold up to node_factor times its own nodes plus
// extra_nodes once its aliases are expanded, and as much for the bytes of its scalars (keys and
// values): without aliases a document is its own size and always passes, and an anchored list
// may be named a few times over. Depth needs no limit of ours: yaml-cpp 0.7's parser refuses
// nesting deeper than 500 (DepthGuard), which load_yaml reports in words, and nothing in
// hallpass walks a node recursively without a bound of its own.
struct yaml_limits {
  std::uint64_t node_factor = 10;
  std::uint64_t extra_nodes = 1'000'000;
  std::uint64_t byte_factor = 10;
  std::uint64_t extra_bytes = 64 * 1024 * 1024;
};

// One use of an alias (`*name`): where, and what it stands for.
struct yaml_alias_use {
  std::string name;
  YAML::Mark mark = YAML::Mark::null_mark();
  std::uint64_t nodes = 0;
  std::uint64_t bytes = 0;
};

// The first document of a YAML text as written and as expanded. Sizes saturate at
// UINT64_MAX (ten levels of ten-fold aliases overflow 64 bits at the twentieth).
struct yaml_size {
  std::uint64_t nodes = 0;           // scalars, nulls, lists, mappings and aliases as written
  std::uint64_t expanded_nodes = 0;  // each alias counted as the nodes its anchor names
  std::uint64_t bytes = 0;           // the scalars' bytes as written (an alias adds none)
  std::uint64_t expanded_bytes = 0;  // each alias counted as its anchor's bytes
  int depth = 0;                     // the deepest list or mapping (a scalar document: 0)
  yaml_alias_use most_nodes;         // the first alias standing for the most nodes (none: no name)
  yaml_alias_use most_bytes;         // the first standing for the most bytes
};

// Thrown by load_yaml for a document beyond its limits; `msg` says which in plain words (the
// policy loader reports it as "FILE:LINE:COL: msg") and `mark` is where it is seen (the
// largest alias, or the list or mapping too deep). A YAML::ParserException, so that code that
// catches yaml-cpp's parse errors catches it too.
class yaml_refused : public YAML::ParserException {
 public:
  using YAML::ParserException::ParserException;
};
class yaml_too_large : public yaml_refused {
 public:
  using yaml_refused::yaml_refused;
};
// Thrown by load_yaml for a text that holds a second document (after `---`, or after the
// first's `...` end): YAML::Load reads only the first, so the rest would be silently ignored.
class yaml_more_documents : public yaml_refused {
 public:
  using yaml_refused::yaml_refused;
};

// Where a second YAML document begins in `text` (its `---` or first line after `...`), or
// nothing. A document marker ("---" or "..." at the start of a line, then a blank or the line's
// end) cannot occur inside a scalar (YAML 1.2, c-forbidden), so line starts are enough: one
// `---` before the first document's content is its own start, not a second document.
std::optional<YAML::Mark> second_document(std::string_view text);

// Measures the first document of `text` (as YAML::Load reads it) without building it. Throws
// yaml_too_large as soon as an alias names a node that holds the alias itself (`&a [*a]`,
// which yaml-cpp would build as a node inside itself: every walk over it endless), and
// YAML::ParserException when the text is not YAML or nests deeper than yaml-cpp reads.
yaml_size measure_yaml(std::string_view text);

// Why a document of this size is refused, and where (the largest alias), or nothing when it is
// within the limits.
struct yaml_refusal {
  YAML::Mark mark = YAML::Mark::null_mark();
  std::string message;
};
std::optional<yaml_refusal> check_yaml_size(const yaml_size& size, const yaml_limits& limits = {});

// YAML::Load(text) once measure_yaml has found the text within `limits`: the same node, or
// yaml_too_large (beyond the limits, an alias inside its own anchor's node, or nested deeper
// than yaml-cpp reads), or YAML::ParserException when the text is not YAML. Text with no '*'
// or no '&' has no alias (an alias is a token that starts with '*' and names an earlier
// anchor, `&name`; yaml-cpp refuses one that names none), so it is loaded without the
// measuring pass, which costs about as much as the parse itself.
YAML::Node load_yaml(std::string_view text, const yaml_limits& limits = {});

}  // namespace hallpass::rules
