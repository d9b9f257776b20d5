#include "config_duplicate_keys.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "allocation_relay/config.h"

namespace allocation_relay {
namespace {

// Finds the first mapping in the document that holds the same key twice: yaml-cpp keeps both
// pairs and a lookup takes the first, so the second would be dropped without a word. Reads the
// parser's events rather than the tree, so an alias is one event (not a copy of what it names)
// and every key keeps its own line. Keys are compared as the reader sees them (their text; an
// alias of a scalar is that scalar); a mapping or list used as a key is never a duplicate.
// Paths are named as ConfigReader names them: "api.keys[2].rate.burst".
class DuplicateKeyFinder : public YAML::EventHandler {
 public:
  struct Duplicate {
    std::string path;
    int line = 0;        // of the second occurrence, 1-based
    int first_line = 0;  // of the first
  };

  // The first duplicate in document order (by its second occurrence), if any.
  const std::optional<Duplicate>& found() const { return found_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark, std::string()); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto scalar = scalar_anchors_.find(anchor);
    Node(mark, scalar == scalar_anchors_.end() ? std::nullopt
                                               : std::optional<std::string>(scalar->second));
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    if (anchor != YAML::NullAnchor) scalar_anchors_[anchor] = value;
    Node(mark, value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Push(false, Node(mark, std::nullopt));
  }
  void OnSequenceEnd() override { stack_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Push(true, Node(mark, std::nullopt));
  }
  void OnMapEnd() override { stack_.pop_back(); }

 private:
  struct Collection {
    bool is_map = false;
    std::string path;
    std::size_t index = 0;                  // a list: the next item's index
    bool at_key = true;                     // a mapping: the next node is a key
    std::optional<std::string> key;         // a mapping: the current key, if a scalar
    std::map<std::string, int> first_line;  // a mapping: the line of each key seen
  };

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  void Push(bool is_map, std::string path) {
    Collection c;
    c.is_map = is_map;
    c.path = std::move(path);
    stack_.push_back(std::move(c));
  }

  // A node begins: a key or a value of the innermost mapping, or an item of the innermost list.
  // `scalar` is its text if it is a key the reader could look up. Returns the node's path (a
  // mapping or list used as a key takes the path of its mapping).
  std::string Node(const YAML::Mark& mark, const std::optional<std::string>& scalar) {
    if (stack_.empty()) return "";
    Collection& c = stack_.back();
    if (!c.is_map) return c.path + "[" + std::to_string(c.index++) + "]";
    if (!c.at_key) {
      c.at_key = true;
      return c.key ? Join(c.path, *c.key) : c.path;
    }
    c.at_key = false;
    c.key = scalar;
    if (scalar) {
      const int line = mark.is_null() ? 0 : mark.line + 1;
      auto [first, inserted] = c.first_line.emplace(*scalar, line);
      if (!inserted && !found_) found_ = Duplicate{Join(c.path, *scalar), line, first->second};
    }
    return c.path;
  }

  std::vector<Collection> stack_;
  std::map<YAML::anchor_t, std::string> scalar_anchors_;
  std::optional<Duplicate> found_;
};

}  // namespace

void CheckDuplicateKeys(const std::string& yaml_text, const std::string& source) {
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  DuplicateKeyFinder finder;
  parser.HandleNextDocument(finder);  // YAML::Load reads the first document only
  if (const auto& d = finder.found()) {
    std::ostringstream out;
    out << source;
    if (d->line > 0) out << ":" << d->line;
    out << ": " << d->path << ": duplicate key";
    if (d->first_line > 0) out << " (first on line " << d->first_line << ")";
    throw ConfigError(out.str());
  }
}
}  // namespace allocation_relay
