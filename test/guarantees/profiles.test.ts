// `npm run test:guarantees`: the watch checker under each fault profile on SQLite and MySQL (MySQL with
// JOBWATCH_TEST_MYSQL_URL); each prints its counts and must end with 0 violations. Galera's profiles: galera.test.ts.
import { describe, test } from "node:test";
import { DIALECTS, freshDatabase, TEST_MYSQL_URL } from "../helpers/databases.js";
import { startProxy } from "../helpers/tcp-proxy.js";
import { inProcessReplicas, prepareDatabase, spawnReplica } from "./replicas.js";
import type { FaultContext } from "./run.js";
import { runProfile } from "./run.js";
import { assertClean } from "./verdict.js";

/** Replica settings of every profile (none: each profile's own fault is all that happens). */
const PROFILE_ENV: Record<string, string> = {};

const spawned = (n: number) => (url: string) =>
  Promise.all(Array.from({ length: n }, (_, i) => spawnReplica(`replica-${i + 1}`, url, PROFILE_ENV)));

const killOne = async (ctx: FaultContext): Promise<void> => {
  await ctx.sleep(3000);
  const victim = ctx.replicas[1]!;
  await victim.kill();
  ctx.note(`${victim.name} killed (SIGKILL)`);
  await ctx.sleep(2000);
  await victim.restart();
  ctx.note(`${victim.name} restarted`);
};

for (const dialect of DIALECTS) {
  describe(`watch guarantees on ${dialect}`, { timeout: 900_000 }, () => {
    test(`${dialect}: kill -9 of a replica under load, restarted on its port`, async (t) => {
      const database = await freshDatabase(dialect);
      t.after(() => database.drop());
      const tokens = await prepareDatabase(database.url);
      const replicas = await spawned(2)(database.url);
      t.after(() => Promise.all(replicas.map((r) => r.stop())));
      assertClean(await runProfile({ name: `${dialect} kill -9`, replicas, tokens, fault: killOne }));
    });

    if (dialect === "mysql") {
      test("mysql: every connection to MySQL cut, then MySQL gone for 3 s, through a proxy", async (t) => {
        const database = await freshDatabase(dialect);
        t.after(() => database.drop());
        const tokens = await prepareDatabase(database.url);
        const target = new URL(TEST_MYSQL_URL!);
        const proxy = await startProxy(`${target.hostname}:${target.port || 3306}`);
        t.after(() => proxy.close());
        const replicas = await spawned(2)(proxy.via(database.url));
        t.after(() => Promise.all(replicas.map((r) => r.stop())));
        const fault = async (ctx: FaultContext): Promise<void> => {
          for (let i = 0; i < 3; i++) {
            await ctx.sleep(1500);
            proxy.cutAll();
            ctx.note("every connection cut");
          }
          await ctx.sleep(1000);
          await proxy.down();
          ctx.note("MySQL gone");
          await ctx.sleep(3000);
          await proxy.up();
          ctx.note("MySQL back");
        };
        assertClean(
          await runProfile({ name: "mysql connections cut, database gone and back", replicas, tokens, fault }),
        );
      });
    }

    if (dialect === "sqlite") {
      test("sqlite: every connection recycled after 2 s (max connection age, 1 s grace): watchers resume elsewhere", async (t) => {
        const database = await freshDatabase(dialect);
        t.after(() => database.drop());
        const tokens = await prepareDatabase(database.url);
        const env = { JOBWATCH_MAX_CONNECTION_AGE: "2s", JOBWATCH_MAX_CONNECTION_AGE_GRACE: "1s" };
        const replicas = await Promise.all(
          ["replica-1", "replica-2"].map((name) => spawnReplica(name, database.url, env)),
        );
        t.after(() => Promise.all(replicas.map((r) => r.stop())));
        assertClean(await runProfile({ name: "sqlite connections recycled every 2 s", replicas, tokens }));
      });

      test("sqlite: the database refusing every write for 4 s (read-only), then taking them again", async (t) => {
        const { replicas, tokens, readOnly, stop } = await inProcessReplicas(dialect, 2);
        t.after(stop);
        const fault = async (ctx: FaultContext): Promise<void> => {
          await ctx.sleep(3000);
          await readOnly(true);
          ctx.note("read-only");
          await ctx.sleep(4000);
          await readOnly(false);
          ctx.note("writable again");
        };
        assertClean(await runProfile({ name: "sqlite read-only and back", replicas, tokens, fault }));
      });
    }
  });
}
