// `jobwatch mcp`: a Model Context Protocol server, over stdio (what assistants launch) or Streamable HTTP,
// whose tools (get_job_details, wait_for_job ...) read and cancel jobs on a jobwatch server with one token.
import { createRequire } from "node:module";
import { type Command, Option, InvalidArgumentError as UsageError } from "commander";
import { isLoopbackHost, listenHttp } from "../mcp/http.js";
import { createMcpServer } from "../mcp/server.js";
import { connectStdio } from "../mcp/stdio.js";
import { ToolRunner } from "../mcp/tools.js";
import { addClientOptions, type ClientFlags, openClient } from "./client-options.js";
import { ExitCode } from "./exit-codes.js";
import { printError } from "./fail.js";

interface McpFlags extends ClientFlags {
  http?: { host: string; port: number };
}

/** Registers `jobwatch mcp`. */
export function register(program: Command): void {
  const command = program
    .command("mcp")
    .summary("serve the job tools to AI assistants over the Model Context Protocol (stdio or HTTP)")
    .description(
      "Serve get_job_details, wait_for_job, list_jobs, get_job_statistics and cancel_job to an AI assistant over " +
        "the Model Context Protocol: on stdin/stdout (what an assistant launches), or with --http on " +
        "http://HOST:PORT/mcp (Streamable HTTP, loopback only). Every call goes to the jobwatch server with " +
        "the token given, which decides what it may see.",
    )
    .addOption(
      new Option("--http <host:port>", "serve Streamable HTTP on this loopback address instead of stdio").argParser(
        parseLoopbackAddress,
      ),
    );
  addClientOptions(command);
  command.action(async (flags: McpFlags) => {
    const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };
    const client = flags.token ? openClient(flags) : undefined;
    const runner = new ToolRunner({ client, address: flags.address });
    if (client === undefined) {
      process.stderr.write(
        "jobwatch mcp: no token (JOBWATCH_TOKEN or --token): every tool will answer how to configure one\n",
      );
    }
    let stop = async (): Promise<void> => {};
    let stopping: Promise<void> | undefined;
    const shutdown = (): Promise<void> => {
      stopping ??= stop().finally(() => client?.close());
      return stopping;
    };
    if (flags.http) {
      let http: Awaited<ReturnType<typeof listenHttp>>;
      try {
        http = await listenHttp(flags.http.host, flags.http.port, () => createMcpServer(runner, version));
      } catch (err) {
        client?.close();
        printError(`cannot listen on ${flags.http.host}:${flags.http.port}: ${(err as Error).message}`);
        process.exitCode = ExitCode.ERROR;
        return;
      }
      process.stdout.write(`jobwatch MCP server on ${http.url} (jobwatch server ${flags.address})\n`);
      stop = () => http.close();
    } else {
      const server = createMcpServer(runner, version);
      await connectStdio(server);
      // The assistant ends the session by closing our stdin.
      process.stdin.once("end", () => void shutdown());
      process.stdin.once("close", () => void shutdown());
      stop = () => server.close();
    }
    process.once("SIGINT", () => void shutdown());
    process.once("SIGTERM", () => void shutdown());
  });
}

/** "127.0.0.1:8080" -> {host, port}; only loopback hosts, since every caller acts with this process's token. */
function parseLoopbackAddress(text: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[2]);
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new UsageError("expected HOST:PORT, such as 127.0.0.1:8808 (port 0 picks a free one)");
  }
  const host = match[1]!;
  if (!isLoopbackHost(host)) {
    throw new UsageError(
      `'${host}' is not a loopback address: the endpoint has no authentication of its own and acts with this ` +
        "process's jobwatch token, so it listens on 127.0.0.1, localhost or [::1] only",
    );
  }
  return { host, port };
}
