// jobwatch as the benchmark runs it: the real service (startService) on the database URL in argv[2],
// with a normal user's and a worker's token made for the run. Prints {"address", "user", "worker", "admin"}
// when serving; stops gracefully on SIGTERM (so a --cpu-prof profile is written).
import { pino } from "pino";
import { createToken } from "../src/auth/token-admin.js";
import { loadConfig } from "../src/config.js";
import { createStore } from "../src/store/open.js";

const url = process.argv[2]!;
const config = loadConfig({
  JOBWATCH_DATABASE_URL: url,
  JOBWATCH_LISTEN: "127.0.0.1:0",
  JOBWATCH_LOG_LEVEL: "silent",
  // Set by bench/metrics-overhead.ts to compare metrics on and off (and the access log off in both).
  JOBWATCH_METRICS_LISTEN: process.env.JOBWATCH_METRICS_LISTEN,
  JOBWATCH_ACCESS_LOG: process.env.JOBWATCH_ACCESS_LOG,
  // Set by bench/tracing-overhead.ts to compare tracing on and off (the SDK reads the other OTEL_* itself).
  OTEL_EXPORTER_OTLP_ENDPOINT: process.env.OTEL_EXPORTER_OTLP_ENDPOINT,
  // The fan-out figure opens 10,000 watches as one user: above the default per-user cap of 100.
  JOBWATCH_MAX_WATCHES_PER_USER: "50000",
  JOBWATCH_MAX_WATCHES: "50000",
});
// The service as production runs it (`npm start`): the build in dist/, which `npm run bench` makes first,
// not the sources through tsx, whose transform adds work to every function the service creates. (The
// path is a variable so that type-checking does not need a build.)
const built = "../dist/main.js";
const { startService } = (await import(built).catch((error: unknown) => {
  throw new Error(`${built} could not be loaded: run npm run build first`, { cause: error });
})) as typeof import("../src/main.js");
let admin = "";
const service = await startService(config, pino({ level: "silent" }), (text) => {
  admin = /jw_[A-Za-z0-9_-]+/.exec(text)?.[0] ?? admin;
});
const store = createStore(url);
const user = await createToken(store, { user: "bench-user", role: "normal_user" });
const worker = await createToken(store, { user: "bench-worker", role: "service" });
await store.close();

process.once("SIGTERM", () => {
  service.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
console.log(JSON.stringify({ address: service.address, user: user.token, worker: worker.token, admin }));
