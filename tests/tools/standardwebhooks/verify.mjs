// Verifies one webhook call with the reference `standardwebhooks` library.
// Usage: node verify.mjs <secret> <file with the three webhook-* headers as JSON> <body file>
// Exits 0 and prints the verified payload's event count, or exits 1 with the library's error.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const [secret, headersFile, bodyFile] = process.argv.slice(2);
const headers = JSON.parse(readFileSync(headersFile, "utf8"));
const body = readFileSync(bodyFile, "utf8");
try {
  const payload = new Webhook(secret).verify(body, headers);
  console.log(`verified: ${payload.events.length} events`);
} catch (e) {
  console.error(`not verified: ${e.message}`);
  process.exit(1);
}
