// CheckDuplicateKeys: the config loader's check for a key written twice in one mapping, which
// yaml-cpp accepts (a lookup then takes the first and the second is dropped without a word).
// Part of the config component: with config.cpp, the only code that sees yaml-cpp.
#ifndef ALLOCATION_RELAY_SHARED_CONFIG_DUPLICATE_KEYS_H_
#define ALLOCATION_RELAY_SHARED_CONFIG_DUPLICATE_KEYS_H_

#include <string>

namespace allocation_relay {

// Throws ConfigError "<source>:<line>: <key path>: duplicate key (first on line N)" for the
// first mapping of the document's first YAML document that holds the same key twice.
// REQUIRES: `yaml_text` parsed (YAML::Load did not throw).
void CheckDuplicateKeys(const std::string& yaml_text, const std::string& source);

}  // namespace allocation_relay

#endif  // ALLOCATION_RELAY_SHARED_CONFIG_DUPLICATE_KEYS_H_
