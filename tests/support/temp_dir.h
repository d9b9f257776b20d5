// TempDir: a fresh directory per test, removed with everything in it on destruction.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_TEMP_DIR_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace allocation_relay::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(const std::string& name) const;
  // Writes `content` to File(name) and returns its path.
  std::string Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_TEMP_DIR_H_
