// The baseline of every transport figure: a bare @grpc/grpc-js server on jobwatch's method paths that
// answers each call with pre-encoded bytes of a real response (no auth, no database, no decoding), and
// fans a change out to its WatchJob streams with one encode per change, as jobwatch does at its best.
// Prints {"address": ...} when listening; stops on SIGTERM.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { GetJobDetailsResponse, WatchJobResponse } from "../src/gen/jobwatch/v1/job_service.js";

/** argv[2]: a JSON file {getJobDetails, reportProgress} of base64 response bytes captured from jobwatch. */
const responses = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as {
  getJobDetails: string;
  reportProgress: string;
};
const getBytes = Buffer.from(responses.getJobDetails, "base64");
const reportBytes = Buffer.from(responses.reportProgress, "base64");
const job = GetJobDetailsResponse.decode(getBytes).job!;

const identity = (b: Buffer): Buffer => b;
const server = new grpc.Server();
const watchers = new Set<grpc.ServerWritableStream<Buffer, Buffer>>();

const unary =
  (bytes: Buffer, onCall?: () => void): grpc.handleUnaryCall<Buffer, Buffer> =>
  (_call, callback) => {
    onCall?.();
    callback(null, bytes);
  };

server.register("/jobwatch.v1.JobService/GetJobDetails", unary(getBytes), identity, identity, "unary");
server.register(
  "/jobwatch.v1.JobWorkerService/ReportProgress",
  unary(reportBytes, () => {
    if (watchers.size === 0) return;
    // One change: one encode, then the same bytes written to every open watch.
    job.revision += 1;
    job.updatedAt = new Date();
    const change = Buffer.from(WatchJobResponse.encode({ job }).finish());
    for (const call of watchers) call.write(change);
  }),
  identity,
  identity,
  "unary",
);
server.register(
  "/jobwatch.v1.JobService/WatchJob",
  (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    watchers.add(call);
    call.on("cancelled", () => watchers.delete(call));
    call.write(Buffer.from(WatchJobResponse.encode({ job }).finish()));
  },
  identity,
  identity,
  "serverStream",
);

const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, p) =>
    error ? reject(error) : resolve(p),
  ),
);
process.on("SIGTERM", () => {
  server.forceShutdown();
  process.exit(0);
});
console.log(JSON.stringify({ address: `127.0.0.1:${port}` }));
