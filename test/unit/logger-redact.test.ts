// createLogger: a webhook's signing secret, and a failed statement's SQL (mysql2 puts the statement with its
// values inline into `err.sql`, so an INSERT of a webhook carries its secret), never reach a log line.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../src/logger.js";

function capture(): { lines: string[]; destination: Writable } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, destination };
}

test("a failed statement's SQL and a webhook secret are redacted, whatever logs them", () => {
  const { lines, destination } = capture();
  const log = createLogger({ level: "info", format: "json", destination });
  const secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0";
  const failed = Object.assign(new Error("Deadlock found when trying to get lock"), {
    code: "ER_LOCK_DEADLOCK",
    sql: `insert into webhooks (webhook_id, secret) values ('w1', '${secret}')`,
  });
  log.error({ err: failed }, "webhook could not be stored");
  log.error({ err: new Error("could not be stored", { cause: failed }) }, "wrapped");
  log.info({ webhook: { id: "w1", secret } }, "registered");
  log.info({ secret }, "registered");
  assert.equal(lines.length, 4);
  for (const line of lines) assert.ok(!line.includes(secret), `no secret in ${line}`);
  const first = JSON.parse(lines[0]!);
  assert.equal(first.err.code, "ER_LOCK_DEADLOCK", "the rest of the error is kept");
  assert.equal(first.err.sql, "[REDACTED]");
});
