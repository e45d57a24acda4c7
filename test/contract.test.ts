// The contract as tools see it: `buf lint` passes, src/gen is what `buf generate` makes today, and a
// running server's reflection serves the exact compiled descriptors, so `buf curl` (and grpcurl) list,
// describe and call it with no .proto file at hand.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join, relative, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { fileDescriptorProtos } from "../src/server/contract.js";
import type { TestServer } from "./helpers/server.js";
import { startTestServer } from "./helpers/server.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../..");
const BIN = join(ROOT, "node_modules", ".bin");
const BUF = join(BIN, "buf");
const run = promisify(execFile);

/**
 * Runs buf in the repo with node_modules/.bin on PATH (for the local ts-proto plugin). Asynchronous on
 * purpose: the server under test lives in this process and must keep answering while buf runs.
 */
async function buf(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(BUF, args, {
      cwd: ROOT,
      env: { ...process.env, PATH: `${BIN}${delimiter}${process.env.PATH ?? ""}` },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? e.message };
  }
}

/** Every file under `dir`, as relative path -> content. */
async function tree(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path), await readFile(path, "utf8"));
  }
  return files;
}

describe("the contract and its generated code", () => {
  test("buf lint passes", async () => {
    const result = await buf(["lint"]);
    assert.equal(result.code, 0, `buf lint:\n${result.stdout}${result.stderr}`);
  });

  // The server's stubs (ts-proto), and the web dashboard's (protobuf-es), each from its own template.
  const GENERATED = [
    { dir: "src/gen", args: [] as string[] },
    { dir: "web/src/gen", args: ["--template", "buf.gen.web.yaml", "--path", "proto/jobwatch"] },
  ];
  for (const { dir, args } of GENERATED) {
    test(`${dir} is exactly what \`buf generate\` makes from proto/ (run \`npm run generate\` if not)`, async () => {
      const out = await mkdtemp(join(tmpdir(), "jobwatch-gen-"));
      try {
        const result = await buf(["generate", ...args, "-o", out]);
        assert.equal(result.code, 0, `buf generate:\n${result.stderr}`);
        const fresh = await tree(join(out, dir));
        const committed = await tree(join(ROOT, dir));
        assert.deepEqual(
          [...committed.keys()].sort(),
          [...fresh.keys()].sort(),
          `${dir} has other files than buf generates`,
        );
        for (const [path, content] of fresh) {
          assert.ok(committed.get(path) === content, `${dir}/${path} is stale: run npm run generate`);
        }
      } finally {
        await rm(out, { recursive: true, force: true });
      }
    });
  }
});

// --- a minimal grpc.reflection.v1 client, enough to ask for the file that defines a symbol ----------------

/** ServerReflectionRequest{file_containing_symbol = 4} on the wire. */
function reflectionRequest(symbol: string): Buffer {
  return Buffer.from(new BinaryWriter().tag(4, WireType.LengthDelimited).string(symbol).finish());
}

/** The file_descriptor_proto list of a ServerReflectionResponse (field 4, its field 1), or its error_response. */
function reflectionFiles(bytes: Buffer): Uint8Array[] {
  const reader = new BinaryReader(bytes);
  const files: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 4) {
      const inner = new BinaryReader(reader.bytes());
      while (inner.pos < inner.len) {
        const [f, w] = inner.tag();
        if (f === 1) files.push(inner.bytes());
        else inner.skip(w, f);
      }
    } else if (field === 7) {
      throw new Error(`reflection error response: ${Buffer.from(reader.bytes()).toString("latin1")}`);
    } else {
      reader.skip(wireType, field);
    }
  }
  return files;
}

/** Asks the server's reflection (v1 or v1alpha) for the files defining `symbol`, as sent. */
async function fileContainingSymbol(address: string, version: "v1" | "v1alpha", symbol: string): Promise<Uint8Array[]> {
  const Client = grpc.makeGenericClientConstructor(
    {
      ServerReflectionInfo: {
        path: `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
        requestStream: true,
        responseStream: true,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    "ServerReflection",
  );
  const client = new Client(address, grpc.credentials.createInsecure());
  try {
    const call = (
      client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<Buffer, Buffer> }
    ).ServerReflectionInfo();
    const response = new Promise<Buffer>((resolvePromise, reject) => {
      call.once("data", (b: Buffer) => resolvePromise(b));
      call.once("error", reject);
    });
    call.write(reflectionRequest(symbol));
    const bytes = await response;
    call.end();
    return reflectionFiles(bytes);
  } finally {
    client.close();
  }
}

describe("server reflection", () => {
  let s: TestServer;
  const curl = (path: string, args: string[] = []) =>
    buf(["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args, `http://${s.address}${path}`]);

  before(async () => {
    s = await startTestServer({ dialect: "sqlite" });
  });
  after(async () => {
    await s?.stop();
  });

  test("buf curl lists both services (and health) with no .proto file", async () => {
    const result = await curl("", ["--list-services"]);
    assert.equal(result.code, 0, result.stderr);
    const services = result.stdout.trim().split("\n");
    assert.ok(services.includes("jobwatch.v1.JobService"), result.stdout);
    assert.ok(services.includes("jobwatch.v1.JobWorkerService"), result.stdout);
    assert.ok(services.includes("grpc.health.v1.Health"), result.stdout);
    const methods = await curl("", ["--list-methods"]);
    assert.equal(methods.code, 0, methods.stderr);
    assert.ok(methods.stdout.includes("jobwatch.v1.JobService/WatchJob"));
  });

  test("buf curl calls GetJobDetails through reflection: NOT_FOUND for an unknown job, the job for a real one", async () => {
    const jobId = randomUUID();
    const missing = await curl("/jobwatch.v1.JobService/GetJobDetails", [
      "-H",
      `authorization: Bearer ${s.tokens.alice}`,
      "-d",
      JSON.stringify({ job_id: jobId }),
    ]);
    assert.notEqual(missing.code, 0);
    // buf curl prints a failed call's status as JSON on stderr.
    const error = JSON.parse(missing.stderr) as { code: string; message: string };
    assert.equal(error.code, "not_found");
    assert.equal(error.message, `job ${jobId} not found (finished jobs are removed after the retention period)`);

    const created = await curl("/jobwatch.v1.JobWorkerService/CreateJob", [
      "-H",
      `authorization: Bearer ${s.tokens.worker}`,
      "-d",
      JSON.stringify({ operation_type: "add_golden_repo", username: "alice" }),
    ]);
    assert.equal(created.code, 0, created.stdout + created.stderr);
    const { job } = JSON.parse(created.stdout) as { job: { jobId: string } };
    const found = await curl("/jobwatch.v1.JobService/GetJobDetails", [
      "-H",
      `authorization: Bearer ${s.tokens.alice}`,
      "-d",
      JSON.stringify({ job_id: job.jobId }),
    ]);
    assert.equal(found.code, 0, found.stdout + found.stderr);
    const details = JSON.parse(found.stdout) as { job: { status: string; username: string } };
    assert.equal(details.job.status, "JOB_STATUS_PENDING");
    assert.equal(details.job.username, "alice");
  });

  test("without a token the call is UNAUTHENTICATED, while reflection and health stay public", async () => {
    const result = await curl("/jobwatch.v1.JobService/GetJobDetails", [
      "-d",
      JSON.stringify({ job_id: randomUUID() }),
    ]);
    assert.equal((JSON.parse(result.stderr) as { code: string }).code, "unauthenticated");
    const health = await curl("/grpc.health.v1.Health/Check", ["-d", "{}"]);
    assert.equal(health.code, 0, health.stderr);
    assert.deepEqual(JSON.parse(health.stdout), { status: "SERVING" });
  });

  for (const version of ["v1", "v1alpha"] as const) {
    test(`reflection ${version} serves the compiled descriptors byte for byte, with every import`, async () => {
      const compiled = new Map(
        fileDescriptorProtos().map((bytes) => [
          fromBinary(FileDescriptorProtoSchema, bytes).name,
          new Uint8Array(bytes),
        ]),
      );
      const served = await fileContainingSymbol(s.address, version, "jobwatch.v1.JobService");
      const byName = new Map(served.map((bytes) => [fromBinary(FileDescriptorProtoSchema, bytes).name, bytes]));
      const first = fromBinary(FileDescriptorProtoSchema, served[0]!);
      assert.equal(first.name, "jobwatch/v1/job_service.proto");
      // Every import of every served file is served too (options.proto is imported only for an option).
      for (const bytes of served) {
        for (const dep of fromBinary(FileDescriptorProtoSchema, bytes).dependency) {
          assert.ok(byName.has(dep), `${dep} is imported but not served`);
        }
      }
      for (const [name, bytes] of byName) {
        assert.deepEqual(Buffer.from(bytes), Buffer.from(compiled.get(name)!), `${name} differs from buf's`);
      }
      // What `describe` shows: comments, and the rpc's declared permission.
      const service = first.service.find((x) => x.name === "JobService")!;
      assert.ok(
        first.sourceCodeInfo?.location.some((l) => l.leadingComments.includes("Returns the current state of one job")),
      );
      assert.ok(service.method.find((m) => m.name === "GetJobDetails")?.options !== undefined);
    });
  }
});
