// Request framing of HttpServer: only a complete request goes to a worker.
#include "http_framing.h"

#include <gtest/gtest.h>

#include <string>

namespace allocation_relay {
namespace {

constexpr std::size_t kMaxBody = 1000;

TEST(HttpFraming, AHeadWithoutBodyIsCompleteAtItsEmptyLine) {
  std::string get = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  Framing f = FrameRequest(get + "GET /next", kMaxBody);
  EXPECT_EQ(f.kind, Framing::Kind::kComplete);
  EXPECT_EQ(f.length, get.size());
  EXPECT_FALSE(f.expects_continue);
}

TEST(HttpFraming, AHeadIsIncompleteUntilItsEmptyLineArrives) {
  std::string get = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::size_t n = 0; n < get.size(); ++n) {
    EXPECT_EQ(FrameRequest(get.substr(0, n), kMaxBody).kind, Framing::Kind::kIncomplete) << n;
  }
}

TEST(HttpFraming, ABodyByContentLengthIsWaitedFor) {
  std::string head = "PUT /x HTTP/1.1\r\ncontent-length: 11\r\n\r\n";
  EXPECT_EQ(FrameRequest(head + "{\"id\":", kMaxBody).kind, Framing::Kind::kIncomplete);
  Framing f = FrameRequest(head + "{\"id\":1234}PUT", kMaxBody);
  EXPECT_EQ(f.kind, Framing::Kind::kComplete);
  EXPECT_EQ(f.length, head.size() + 11);
}

TEST(HttpFraming, ExpectContinueIsReported) {
  Framing f = FrameRequest("POST /x HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n",
                           kMaxBody);
  EXPECT_EQ(f.kind, Framing::Kind::kIncomplete);
  EXPECT_TRUE(f.expects_continue);
}

TEST(HttpFraming, ADeclaredBodyOverTheLimitIsRefusedBeforeItArrives) {
  EXPECT_EQ(FrameRequest("PUT /x HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", kMaxBody).kind,
            Framing::Kind::kBodyTooLarge);
  EXPECT_EQ(FrameRequest("PUT /x HTTP/1.1\r\nContent-Length: 1000\r\n\r\n", kMaxBody).kind,
            Framing::Kind::kIncomplete);
}

TEST(HttpFraming, UnreadableOrConflictingLengthsAreBad) {
  EXPECT_EQ(FrameRequest("PUT /x HTTP/1.1\r\nContent-Length: 12a\r\n\r\n", kMaxBody).kind,
            Framing::Kind::kBad);
  EXPECT_EQ(FrameRequest("PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", kMaxBody).kind,
            Framing::Kind::kBad);
  EXPECT_EQ(
      FrameRequest("PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", kMaxBody)
          .kind,
      Framing::Kind::kBad);
}

TEST(HttpFraming, AChunkedBodyEndsAtItsLastChunkAndTrailers) {
  std::string head = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string body = "5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\n";
  EXPECT_EQ(FrameRequest(head + body, kMaxBody).kind, Framing::Kind::kIncomplete);
  Framing f = FrameRequest(head + body + "\r\nGET", kMaxBody);
  EXPECT_EQ(f.kind, Framing::Kind::kComplete);
  EXPECT_EQ(f.length, head.size() + body.size() + 2);
  Framing trailers = FrameRequest(head + body + "X-Sum: 1\r\n\r\n", kMaxBody);
  EXPECT_EQ(trailers.kind, Framing::Kind::kComplete);
  EXPECT_EQ(trailers.length, head.size() + body.size() + 12);
}

TEST(HttpFraming, TransferCodingsOtherThanChunkedAreBad) {
  EXPECT_EQ(
      FrameRequest("POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", kMaxBody).kind,
      Framing::Kind::kBad);
  EXPECT_EQ(
      FrameRequest("POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", kMaxBody)
          .kind,
      Framing::Kind::kComplete);
}

TEST(HttpFraming, ChunksOverTheLimitOrUnreadableSizesAreRefused) {
  std::string head = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(FrameRequest(head + "3E9\r\n", kMaxBody).kind, Framing::Kind::kBodyTooLarge);
  EXPECT_EQ(FrameRequest(head + "zz\r\n", kMaxBody).kind, Framing::Kind::kBad);
}

TEST(HttpFraming, AHeadThatNeverEndsIsTooLarge) {
  std::string head = "GET /x HTTP/1.1\r\nX-Long: " + std::string(kMaxRequestHead, 'a');
  EXPECT_EQ(FrameRequest(head, kMaxBody).kind, Framing::Kind::kHeadTooLarge);
}

TEST(HttpFraming, RangeLinesAreRemovedAndTheRestKept) {
  std::string request =
      "GET /console/app.js HTTP/1.1\r\nHost: x\r\nrange: bytes=0-9\r\nAccept: */*\r\n"
      "If-Range: \"x\"\r\nRange:bytes=5-\r\n\r\n";
  const std::string next = "GET /next HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n";
  std::string buf = request + next;
  std::size_t length = PrepareHeadForHttplib(&buf, request.size());
  const std::string expected = "GET /console/app.js HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
  EXPECT_EQ(buf.substr(0, length), expected);
  EXPECT_EQ(buf.substr(length), next);  // the next request is not this one's to edit
}

TEST(HttpFraming, AFormContentTypeIsKeptButNotInHttplibsSpelling) {
  const std::string body(9000, 'x');
  std::string buf =
      "POST /allocations HTTP/1.1\r\nContent-Type:  application/x-www-form-urlencoded"
      "\r\nContent-Length: 9000\r\n\r\n" +
      body;
  std::size_t length = PrepareHeadForHttplib(&buf, buf.size());
  EXPECT_EQ(length, buf.size());
  EXPECT_EQ(buf,
            "POST /allocations HTTP/1.1\r\nContent-Type:  Application/x-www-form-urlencoded"
            "\r\nContent-Length: 9000\r\n\r\n" +
                body);
  std::string json = "PUT /x HTTP/1.1\r\nContent-Type: application/json\r\n\r\n";
  const std::string before = json;
  EXPECT_EQ(PrepareHeadForHttplib(&json, json.size()), before.size());
  EXPECT_EQ(json, before);
}

}  // namespace
}  // namespace allocation_relay
