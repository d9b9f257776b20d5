// send_bench: the dispatcher's send path alone, without the database: the product's
// WebhookSender (libcurl multi) posting one body over and over, `--concurrency` in flight, to a
// fast receiver on loopback, beside the plain libcurl-multi loop (tests/support/curl_loop.h) in
// the same process against the same receiver. Two variants of the sender: the bare body with
// one header, and the real standard-webhooks request (FormatWebhook per call: signature, id,
// timestamp, user agent), which is what allocation-dispatcherd sends.
//
// Usage: send_bench [--calls N] [--concurrency C] [--runs R]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "support/curl_loop.h"
#include "support/epoll_receiver.h"
#include "webhook_format.h"
#include "webhook_sender.h"

using namespace allocation_relay;
using Steady = std::chrono::steady_clock;

namespace {

// Calls per second through WebhookSender; `format`: the real request, else body + Content-Type.
double SenderLoop(const std::string& url, const std::string& body, int calls, int concurrency,
                  bool format) {
  WebhookSender sender;
  WebhookConfig hook;
  hook.url = url;
  hook.secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
  hook.signature = SignatureScheme::kStandardWebhooks;
  int next = 0, done = 0, failed = 0;
  auto submit = [&] {
    WebhookCall call;
    call.tag = static_cast<std::uint64_t>(next++);
    call.url = url;
    if (format) {
      call.request =
          FormatWebhook(hook, "msg_0123456789abcdef01234567", body, 1'700'000'000 + next / 1000);
    } else {
      call.request.body = body;
      call.request.headers = {{"Content-Type", "application/json"}};
    }
    call.allow_private_networks = true;
    sender.Submit(std::move(call));
  };
  const auto start = Steady::now();
  for (int i = 0; i < concurrency && next < calls; ++i) submit();
  while (done < calls) {
    for (const WebhookOutcome& outcome : sender.Poll(std::chrono::milliseconds(10))) {
      ++done;
      if (outcome.http_status != 200) ++failed;
      if (next < calls) submit();
    }
  }
  if (failed > 0) std::fprintf(stderr, "%d of %d calls failed\n", failed, calls);
  return calls / std::chrono::duration<double>(Steady::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  int calls = 100000, concurrency = 50, runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--calls")
      calls = std::stoi(argv[i + 1]);
    else if (flag == "--concurrency")
      concurrency = std::stoi(argv[i + 1]);
    else if (flag == "--runs")
      runs = std::stoi(argv[i + 1]);
  }
  std::atomic<long> received{0};
  testing::EpollReceiver receiver([&](std::string_view, std::string_view) { ++received; });
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook";
  // The size of one standard-webhooks event, as dispatch_bench sends.
  const std::string body(620, 'x');
  const std::vector<std::string> bodies(static_cast<std::size_t>(calls), body);
  std::printf("%d calls of %zu bytes, %d in flight, to a local receiver\n", calls, body.size(),
              concurrency);
  for (int run = 0; run < runs; ++run) {
    double plain = testing::PlainCurlLoop(url, bodies, concurrency);
    double bare = SenderLoop(url, body, calls, concurrency, false);
    double real = SenderLoop(url, body, calls, concurrency, true);
    std::printf(
        "baseline plain loop %6.0f calls/s | WebhookSender, body + 1 header %6.0f (%.2f) | "
        "WebhookSender, standard-webhooks request %6.0f (%.2f)\n",
        plain, bare, bare / plain, real, real / plain);
  }
  return 0;
}
