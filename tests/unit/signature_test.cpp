#include "allocation_relay/signature.h"

#include <gtest/gtest.h>

#include "allocation_relay/render.h"

namespace allocation_relay {
namespace {

// The test vector of reference/centra-facts.md.
TEST(CentraSignature, MatchesTheReferenceTestVector) {
  EXPECT_EQ(CentraSignatureHeader("test123", 12345678, "payload=%7B%22x%22%3A%22test%22%7D"),
            "t=12345678,v1=0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549");
}

TEST(CentraSignature, SignsTheFormEncodedBodyWeBuild) {
  // The body the dispatcher sends for {"x":"test"} is exactly the vector's body.
  std::string body = "payload=" + FormUrlEncode(R"({"x":"test"})");
  EXPECT_EQ(body, "payload=%7B%22x%22%3A%22test%22%7D");
  EXPECT_EQ(CentraSignatureHeader("test123", 12345678, body),
            "t=12345678,v1=0b9cd84f5d583e5e1aadfb9f160aa8080b51d5b85ff85808d6b75bdac356c549");
}

TEST(CentraSignature, DependsOnSecretTimeAndBody) {
  std::string base = CentraSignatureHeader("test123", 12345678, "payload=x");
  EXPECT_NE(base, CentraSignatureHeader("test124", 12345678, "payload=x"));
  EXPECT_NE(base, CentraSignatureHeader("test123", 12345679, "payload=x"));
  EXPECT_NE(base, CentraSignatureHeader("test123", 12345678, "payload=y"));
}

// The example of the Standard Webhooks specification's test suite (computed independently with
// Python's hmac module as well).
TEST(StandardWebhooksSignature, MatchesTheSpecificationExample) {
  EXPECT_EQ(StandardWebhooksSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                      "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                      R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

// Keys and HMAC contexts are remembered per thread and re-initialised per signature: signing
// again, after another secret and after a different message, must give the same answer.
TEST(StandardWebhooksSignature, SigningAgainGivesTheSameAnswer) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(StandardWebhooksSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                        "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                        R"({"test": 2432232314})"),
              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    EXPECT_NE(StandardWebhooksSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_2", 1, "x"),
              std::nullopt);
    EXPECT_NE(StandardWebhooksSignature("whsec_dGVzdA==", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                        1614265330, R"({"test": 2432232314})"),
              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    EXPECT_EQ(StandardWebhooksSignature("whsec_not base64!", "msg_1", 1, "{}"), std::nullopt);
  }
}

TEST(StandardWebhooksSignature, RefusesSecretsNotOfTheWhsecForm) {
  EXPECT_EQ(StandardWebhooksSignature("test123", "msg_1", 1, "{}"), std::nullopt);
  EXPECT_EQ(StandardWebhooksSignature("whsec_", "msg_1", 1, "{}"), std::nullopt);
  EXPECT_EQ(StandardWebhooksSignature("whsec_not base64!", "msg_1", 1, "{}"), std::nullopt);
  EXPECT_TRUE(IsStandardWebhooksSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
}

TEST(Base64, RoundTripsEveryPaddingLength) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(Base64Encode("abc"), "YWJj");
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  EXPECT_EQ(Base64Decode("YWI"), std::nullopt);
}

TEST(Sha256Hex, HashesTokensAsTheConfigWritesThem) {
  EXPECT_EQ(Sha256Hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

// RFC 4231 test case 1 and the empty key, interleaved: each thread keeps one keyed context per
// secret, and switching between secrets must never sign with the wrong one.
TEST(HmacSha256, MatchesRfc4231WhateverTheOrderOfKeys) {
  const std::string rfc_key(20, '\x0b');
  const std::string rfc = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
  const std::string empty = "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(HmacSha256Hex(rfc_key, "Hi There"), rfc);
    EXPECT_EQ(HmacSha256Hex("", ""), empty);
  }
  for (int k = 0; k < 300; ++k) HmacSha256Hex("key" + std::to_string(k), "x");  // cache refills
  EXPECT_EQ(HmacSha256Hex(rfc_key, "Hi There"), rfc);
}

}  // namespace
}  // namespace allocation_relay
