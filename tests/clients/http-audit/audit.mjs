// The graphql-http audit of the GraphQL-over-HTTP specification against a running server.
// Usage: node audit.mjs <url of the GraphQL endpoint>
// Prints one line per audit, `<status>\t<id>\t<name>` then the reason of anything not ok,
// a `summary` line last; exits 1 on any error or warning (a notice, a MAY, is reported only).
import { auditServer } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs <url>");
  process.exit(2);
}

const results = await auditServer({ url });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  console.log(`${result.status}\t${result.id}\t${result.name}`);
  if (result.status !== "ok") {
    const response = result.response
      ? ` (HTTP ${result.response.status}: ${await result.response.text().catch(() => "")})`
      : "";
    console.log(`  reason: ${result.reason}${response}`.slice(0, 600));
  }
}
console.log(
  `summary\tok=${counts.ok}\tnotice=${counts.notice}\twarn=${counts.warn}\terror=${counts.error}`,
);
process.exit(counts.warn + counts.error > 0 ? 1 : 0);
