// A corpus of malformed protobuf bodies (random, truncated, wrong wire types, huge lengths, deep nesting)
// sent to every rpc of every service on a raw channel: each ends with a client-error code, never INTERNAL
// or UNKNOWN, and the server is healthy afterwards. The corpus is generated from a fixed seed.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import { CONTRACT_REGISTRY } from "../src/server/contract.js";
import { rawCall, rawClient } from "./helpers/raw.js";
import type { TestServer } from "./helpers/server.js";
import { startTestServer } from "./helpers/server.js";

/** mulberry32: a small deterministic PRNG, so a failure names a corpus entry that reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One corpus entry: a name to report, the bytes, and whether no reading of them can be a valid message. */
interface Entry {
  name: string;
  bytes: Buffer;
  /** True when the bytes cannot decode as any message: the answer must be INVALID_ARGUMENT exactly. */
  malformed: boolean;
}

const bytesOf = (build: (w: BinaryWriter) => void): Buffer => {
  const w = new BinaryWriter();
  build(w);
  return Buffer.from(w.finish());
};

/** The corpus for one request type, whose fields (numbers) are known. */
function corpus(random: () => number, fieldNumbers: number[]): Entry[] {
  const entries: Entry[] = [];
  const randomBytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const fields = [...fieldNumbers, 99];
  for (let i = 0; i < 12; i++) {
    const n = 1 + Math.floor(random() * 64);
    entries.push({ name: `random ${n} bytes #${i}`, bytes: randomBytes(n), malformed: false });
  }
  for (const field of fields) {
    const valid = bytesOf((w) => w.uint32((field << 3) | 2).string("3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70"));
    entries.push({
      name: `field ${field}: truncated string`,
      bytes: valid.subarray(0, valid.length - 5),
      malformed: true,
    });
    entries.push({
      name: `field ${field}: length 2^31 with 3 bytes`,
      bytes: Buffer.concat([bytesOf((w) => w.uint32((field << 3) | 2).uint32(2 ** 31)), Buffer.from([1, 2, 3])]),
      malformed: true,
    });
    for (const wireType of [0, 1, 2, 5]) {
      // A field with a wire type its declaration does not have: skipped as unknown, so decodable.
      const body = bytesOf((w) => {
        const tag = w.uint32((field << 3) | wireType);
        if (wireType === 0) tag.uint64(2n ** 63n);
        else if (wireType === 1) tag.fixed64(1n);
        else if (wireType === 2) tag.bytes(randomBytes(8));
        else tag.fixed32(7);
      });
      entries.push({ name: `field ${field}: wire type ${wireType}`, bytes: body, malformed: false });
    }
    entries.push({
      name: `field ${field}: wire type 6`,
      bytes: bytesOf((w) => w.uint32((field << 3) | 6)),
      malformed: true,
    });
    entries.push({
      name: `field ${field}: wire type 7`,
      bytes: bytesOf((w) => w.uint32((field << 3) | 7)),
      malformed: true,
    });
    entries.push({
      name: `field ${field}: varint of 11 bytes`,
      bytes: Buffer.concat([bytesOf((w) => w.uint32(field << 3)), Buffer.alloc(10, 0xff), Buffer.from([0x01])]),
      // The decoders read 10 bytes and take the 11th as a tag: see "field number 0" below.
      malformed: false,
    });
    entries.push({
      name: `field ${field}: int64 2^60`,
      bytes: bytesOf((w) => w.uint32(field << 3).int64(2n ** 60n)),
      malformed: false,
    });
    // Deep nesting: a message field holding itself 500 times, and 500 open groups.
    let deep: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 500; i++) deep = bytesOf((w) => w.uint32((field << 3) | 2).bytes(deep));
    entries.push({ name: `field ${field}: nested 500 deep`, bytes: deep, malformed: false });
    const groups = Buffer.concat(Array.from({ length: 500 }, () => bytesOf((w) => w.uint32((field << 3) | 3))));
    entries.push({ name: `field ${field}: 500 open groups`, bytes: groups, malformed: true });
  }
  // Generated decoders (ts-proto, protobuf.js) end a message at tag 0 or an unmatched end-group, as they
  // do for a group's end: what came before is the request, so these are answered like any other request.
  entries.push({ name: "field number 0", bytes: Buffer.from([0x00, 0x01]), malformed: false });
  entries.push({ name: "a lone end-group", bytes: bytesOf((w) => w.uint32((1 << 3) | 4)), malformed: false });
  return entries;
}

/** Codes that say the caller sent something wrong (or nothing wrong: random bytes can be a valid request). */
const CLIENT_CODES = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.ALREADY_EXISTS,
  grpc.status.OUT_OF_RANGE,
]);

describe("the bad-input corpus", () => {
  let s: TestServer;
  let client: grpc.Client;
  before(async () => {
    s = await startTestServer({ dialect: "sqlite" });
    client = rawClient(s);
  });
  after(async () => {
    client?.close();
    await s?.stop();
  });

  const methods = [...CONTRACT_REGISTRY]
    .filter((type) => type.kind === "service")
    .flatMap((service) => service.methods.map((method) => ({ service, method })));

  test("the corpus covers every rpc of every service the server lists", () => {
    assert.deepEqual([...new Set(methods.map((m) => m.service.typeName))].sort(), [
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "jobwatch.v1.JobService",
      "jobwatch.v1.JobWebhookService",
      "jobwatch.v1.JobWorkerService",
    ]);
  });

  for (const { service, method } of methods) {
    const path = `/${service.typeName}/${method.name}`;
    test(`${path}: every corpus entry is a client error`, async () => {
      const random = prng(0x6a6f62 ^ path.length);
      const entries = corpus(
        random,
        method.input.fields.map((f) => f.number),
      );
      const kind = {
        requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
        responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      };
      const wrong: string[] = [];
      // A few at a time: enough to overlap, not so many that the machine's other work suffers.
      for (let i = 0; i < entries.length; i += 8) {
        const batch = entries.slice(i, i + 8);
        const outcomes = await Promise.all(batch.map((e) => rawCall(client, path, kind, e.bytes, s.tokens.admin)));
        outcomes.forEach((outcome, j) => {
          const entry = batch[j] as Entry;
          const ok = entry.malformed ? outcome.code === grpc.status.INVALID_ARGUMENT : CLIENT_CODES.has(outcome.code);
          if (!ok) wrong.push(`${entry.name}: ${grpc.status[outcome.code]} ${outcome.details}`);
        });
      }
      assert.deepEqual(wrong, [], `${wrong.length} of ${entries.length} entries were not client errors`);
    });
  }

  test("afterwards the server is healthy and a normal call works", async () => {
    const health = await rawCall(
      client,
      "/grpc.health.v1.Health/Check",
      { requestStream: false, responseStream: false },
      Buffer.alloc(0),
      undefined,
    );
    assert.equal(health.code, grpc.status.OK);
    assert.equal(s.server.health.status, "SERVING");
    const { worker, jobs } = s.as(s.tokens.admin);
    const { job } = await worker.createJob({
      operationType: "after_corpus",
      username: "admin",
      resource: randomUUID(),
    });
    const got = await jobs.getJobDetails({ jobId: job?.jobId ?? "" });
    assert.equal(got.job?.operationType, "after_corpus");
  });
});
