// FormDecode: reverses application/x-www-form-urlencoded encoding (FormUrlEncode), for tests
// that read Centra's payload= bodies.
#ifndef ALLOCATION_RELAY_TESTS_SUPPORT_FORM_H_
#define ALLOCATION_RELAY_TESTS_SUPPORT_FORM_H_

#include <string>

namespace allocation_relay::testing {

inline std::string FormDecode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace allocation_relay::testing

#endif  // ALLOCATION_RELAY_TESTS_SUPPORT_FORM_H_
