// redactSecrets: no authorization value, bearer token, jobwatch token or JWT survives, in any of the
// shapes grpc-js and Node print metadata in.
import assert from "node:assert/strict";
import { test } from "node:test";
import { inspect } from "node:util";
import { redactSecrets } from "../../src/auth/redact.js";

const TOKEN = "jw_0123456789ab_c2VjcmV0LXNlY3JldC1zZWNyZXQ";
const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

test("every shape of an authorization value is redacted", () => {
  const lines = [
    `authorization: Bearer ${TOKEN}`,
    `authorization: Bearer\t${TOKEN}`,
    `{"authorization":["Bearer ${TOKEN}"]}`,
    `authorization=Basic dXNlcjpwYXNz`,
    // Node's inspect of a Map of metadata (grpc-js's Metadata keeps one), with a value of no known shape.
    inspect(new Map([["authorization", ["Basic dXNlcjpwYXNz"]]])),
    `the token ${TOKEN} was refused`,
    `jwt ${JWT} expired`,
  ];
  for (const line of lines) {
    const out = redactSecrets(line);
    for (const secret of [TOKEN.slice(16), "dXNlcjpwYXNz", JWT]) {
      assert.ok(!out.includes(secret), `${JSON.stringify(line)} -> ${JSON.stringify(out)}`);
    }
  }
});

test("text without secrets is left as it is", () => {
  const line = "call finished rpc=jobwatch.v1.JobService/GetJobDetails code=OK";
  assert.equal(redactSecrets(line), line);
});
