// The watch checker on a 3-node Galera cluster, one replica per node (`npm run test:guarantees` starts the cluster):
// a node hung with SIGSTOP and woken, a node killed and rejoining, two nodes killed in quick succession (the cluster
// recovered from the most advanced node).
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createConnection } from "mysql2/promise";
import type { ClusterDatabase } from "../helpers/galera.js";
import { freshClusterDatabase, GALERA_NODES, killNode, recoverCluster, restartNode } from "../helpers/galera.js";
import type { Replica } from "./replicas.js";
import { prepareDatabase, spawnReplica } from "./replicas.js";
import type { FaultContext } from "./run.js";
import { runProfile } from "./run.js";
import { assertClean } from "./verdict.js";

const SCRIPT = fileURLToPath(new URL("../../scripts/galera-cluster.sh", import.meta.url));
const run = promisify(execFile);

/** One query on node n (1-based), as root over TCP. */
async function onNode<T>(n: number, query: string): Promise<T> {
  const url = new URL(GALERA_NODES[n - 1]!);
  const c = await createConnection({ host: url.hostname, port: Number(url.port), user: "root", connectTimeout: 2000 });
  try {
    const [rows] = await c.query(query);
    return rows as T;
  } finally {
    await c.end();
  }
}

/** wsrep_local_state_comment of node n ("Synced" ...), or what went wrong asking. */
async function nodeState(n: number): Promise<string> {
  try {
    const rows = await onNode<{ Value: string }[]>(n, "show status like 'wsrep_local_state_comment'");
    return rows[0]?.Value ?? "no answer";
  } catch (error) {
    return (error as Error).message;
  }
}

/** Waits until every node is Synced in a 3-node primary component. */
async function clusterWhole(timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all([1, 2, 3].map(nodeState));
    if (states.every((s) => s === "Synced")) return;
    if (Date.now() > until) throw new Error(`the cluster is not whole again: ${states.join(", ")}`);
    await sleep(250);
  }
}

describe("watch guarantees on Galera, one replica per node", { timeout: 900_000 }, () => {
  let database: ClusterDatabase;
  before(async () => {
    database = await freshClusterDatabase();
  });
  // GUARANTEES_LOG_DIR (see replicas.ts) keeps the database too, to look up a violation's rows afterwards.
  after(() => (process.env.GUARANTEES_LOG_DIR ? undefined : database?.drop()));

  /** Starts one replica per node on a fresh set of tokens, runs the profile, stops them. */
  const profile = (name: string, fault: (ctx: FaultContext) => Promise<void>) =>
    test(name, async (t) => {
      await clusterWhole();
      const tokens = await prepareDatabase(database.urls[0]!);
      const replicas: Replica[] = await Promise.all(database.urls.map((url, i) => spawnReplica(`node-${i + 1}`, url)));
      t.after(() => Promise.all(replicas.map((r) => r.stop())));
      assertClean(await runProfile({ name: `galera ${name}`, replicas, tokens, fault }));
      await clusterWhole();
    });

  profile("a node stopped with SIGSTOP for 5 s, then resumed", async (ctx) => {
    await ctx.sleep(3000);
    await run(SCRIPT, ["pause-node", "3"]);
    ctx.note("node 3 SIGSTOP");
    await sleep(5000);
    await run(SCRIPT, ["resume-node", "3"]);
    ctx.note("node 3 SIGCONT");
    await clusterWhole();
    ctx.note("node 3 Synced");
  });

  profile("a node killed (kill -9) and rejoining", async (ctx) => {
    await ctx.sleep(3000);
    await killNode(2);
    ctx.note("node 2 killed");
    await sleep(3000);
    await restartNode(2);
    ctx.note("node 2 restarted and Synced");
  });

  profile("two nodes killed in quick succession, the cluster recovered from the most advanced node", async (ctx) => {
    await ctx.sleep(3000);
    await killNode(2);
    await sleep(500);
    await killNode(3);
    ctx.note("nodes 2 and 3 killed 0.5 s apart");
    // Node 1 alone is not a majority of the last component: it stops serving until the cluster is recovered. It may
    // lack the last commits of a killed node (a node commits a writeset once it is ordered, which can be before the
    // others have received it): bootstrapping node 1 would take those back, so the node that committed the most
    // becomes the primary component and the others rejoin it.
    await sleep(3000);
    ctx.note(`node 1: ${await nodeState(1)}`);
    await recoverCluster(ctx.note);
    ctx.note("the cluster whole again");
  });
});
