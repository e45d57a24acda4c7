// The jobwatch schema as Kysely migrations kept in code (no files on disk), for SQLite and MySQL/MariaDB.
// Over 350 lines on purpose: one ordered list of migrations, each a short up/down pair, read top to bottom
// as the schema's history; the lock that makes them safe for replicas starting at once is at the end.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type SqliteDatabase from "better-sqlite3";
import type { CreateTableBuilder, Kysely, Migration, MigrationProvider } from "kysely";
import { Migrator, sql } from "kysely";
import type { Dialect, OpenDatabase } from "./connect.js";
import { EVERY_USER_KEYS, rebuildEveryUserCounts } from "./counts.js";
import type { Database } from "./database.js";
import { rebuildDurationHistogram } from "./duration-histogram.js";

/** The migrations, by name; names sort in the order they apply. */
function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    "0001_init": init(dialect),
    "0002_jobs_status_created": statusCreatedIndex(),
    "0003_no_pad_collation": noPadCollation(dialect),
    "0004_job_events_transition": transitionColumn(),
    "0005_job_counts": jobCounts(dialect),
    "0006_counts_and_user_status_indexes": countsAndUserStatusIndexes(),
    "0007_completion_estimate": completionEstimate(),
    "0008_jobs_type_status_created": typeStatusCreatedIndex(dialect),
    "0009_jobs_trace_context": traceContext(),
    "0010_duration_histogram": durationHistogram(dialect),
    "0011_webhooks": webhooks(dialect),
    "0012_duration_histogram_by_type": durationHistogramByType(dialect),
    "0013_job_events_partial_transition_index": partialTransitionIndex(dialect),
  };
}

/** A Kysely MigrationProvider serving migrations() for the dialect. */
export function migrationProvider(dialect: Dialect): MigrationProvider {
  return { getMigrations: async () => migrations(dialect) };
}

function init(dialect: Dialect): Migration {
  const mysql = dialect === "mysql";
  // MySQL TEXT holds 64 KB; a result or a snapshot (which embeds the result) can be larger.
  const bigText = mysql ? "mediumtext" : "text";
  // Binary collation on MySQL so usernames, ids and operation types compare and sort exactly as on SQLite.
  const tableOptions = mysql ? sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin` : sql``;
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("jobs")
        .addColumn("job_id", "varchar(36)", (c) => c.primaryKey())
        .addColumn("operation_type", "varchar(255)", (c) => c.notNull())
        .addColumn("username", "varchar(255)", (c) => c.notNull())
        .addColumn("resource", "text")
        .addColumn("request_id", "varchar(255)", (c) => c.unique())
        .addColumn("active_key", "varchar(64)", (c) => c.unique())
        .addColumn("status", "varchar(16)", (c) => c.notNull())
        .addColumn("progress", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("phase", "text")
        .addColumn("detail", "text")
        .addColumn("result", sql.raw(bigText))
        .addColumn("error", sql.raw(bigText))
        .addColumn("cancel_requested", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("cancel_reason", "text")
        .addColumn("cancel_requested_at", "bigint")
        .addColumn("revision", "bigint", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("started_at", "bigint")
        .addColumn("completed_at", "bigint")
        .addColumn("last_heartbeat_at", "bigint")
        .addColumn("history_at", "bigint")
        .modifyEnd(tableOptions)
        .execute();
      // ListJobs of one user, newest first, keyset on (created_at, job_id).
      await db.schema
        .createIndex("jobs_user_created")
        .on("jobs")
        .columns(["username", "created_at", "job_id"])
        .execute();
      // ListJobs of every user (manage_jobs), same keyset.
      await db.schema.createIndex("jobs_created").on("jobs").columns(["created_at", "job_id"]).execute();
      // Status counts; the stale-worker sweep.
      await db.schema
        .createIndex("jobs_status_heartbeat")
        .on("jobs")
        .columns(["status", "last_heartbeat_at"])
        .execute();
      // Retention sweep and the statistics window.
      await db.schema.createIndex("jobs_status_completed").on("jobs").columns(["status", "completed_at"]).execute();
      // Cancel grace sweep.
      await db.schema.createIndex("jobs_status_cancel").on("jobs").columns(["status", "cancel_requested_at"]).execute();

      let events = db.schema.createTable("job_events");
      events = mysql
        ? events.addColumn("seq", "bigint", (c) => c.autoIncrement().primaryKey())
        : events.addColumn("seq", "integer", (c) => c.primaryKey().autoIncrement());
      // No foreign key to jobs: its shared locks on the parent row would add deadlocks to every
      // transition; retention deletes a job's events before the job itself.
      await events
        .addColumn("job_id", "varchar(36)", (c) => c.notNull())
        .addColumn("revision", "bigint", (c) => c.notNull())
        .addColumn("at", "bigint", (c) => c.notNull())
        .addColumn("status", "varchar(16)", (c) => c.notNull())
        .addColumn("progress", "integer", (c) => c.notNull())
        .addColumn("phase", "text")
        .addColumn("detail", "text")
        .addColumn("cancel_requested", "integer", (c) => c.notNull())
        .addColumn("error", sql.raw(bigText))
        .addColumn("recorded", "integer", (c) => c.notNull())
        .addColumn("snapshot", sql.raw(bigText), (c) => c.notNull())
        .modifyEnd(tableOptions)
        .execute();
      // One event per revision: a second writer of the same revision fails instead of forking history.
      await db.schema
        .createIndex("job_events_job_revision")
        .unique()
        .on("job_events")
        .columns(["job_id", "revision"])
        .execute();
      // pruneFeed: unrecorded events by age.
      await db.schema.createIndex("job_events_recorded_at").on("job_events").columns(["recorded", "at"]).execute();

      await db.schema
        .createTable("tokens")
        .addColumn("token_id", "varchar(64)", (c) => c.primaryKey())
        .addColumn("username", "varchar(255)", (c) => c.notNull())
        .addColumn("role", "varchar(64)", (c) => c.notNull())
        .addColumn("secret_hash", "varchar(128)", (c) => c.notNull().unique())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint")
        .modifyEnd(tableOptions)
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable("tokens").execute();
      await db.schema.dropTable("job_events").execute();
      await db.schema.dropTable("jobs").execute();
    },
  };
}

/**
 * ListJobs filtered by status, newest first: without it both dialects read every job of the status
 * and sort them (about 300 ms for one status at a million jobs on SQLite, bench/list-jobs.ts).
 */
function statusCreatedIndex(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createIndex("jobs_status_created")
        .on("jobs")
        .columns(["status", "created_at", "job_id"])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex("jobs_status_created").on("jobs").execute();
    },
  };
}

/**
 * MySQL's utf8mb4_bin is a PAD SPACE collation: 'alice' = 'alice   ', so alice's ListJobs and statistics
 * counted the jobs of user "alice   " while GetJobDetails (checked in code) hid them. A NO PAD binary
 * collation compares strings exactly, as SQLite does: utf8mb4_0900_bin on MySQL 8, utf8mb4_nopad_bin on
 * MariaDB. Converting only makes values more distinct, so no unique key can start to collide.
 */
function noPadCollation(dialect: Dialect): Migration {
  const tables = ["jobs", "job_events", "tokens"];
  return {
    async up(db: Kysely<unknown>) {
      if (dialect !== "mysql") return;
      const collation = await noPadBinCollation(db);
      for (const table of tables) {
        await sql`alter table ${sql.table(table)} convert to character set utf8mb4 collate ${sql.raw(collation)}`.execute(
          db,
        );
      }
    },
    async down(db: Kysely<unknown>) {
      if (dialect !== "mysql") return;
      for (const table of tables) {
        await sql`alter table ${sql.table(table)} convert to character set utf8mb4 collate utf8mb4_bin`.execute(db);
      }
    },
  };
}

/** The NO PAD binary collation of this MySQL server (see noPadCollation). */
async function noPadBinCollation(db: Kysely<unknown>): Promise<string> {
  const { rows } = await sql<{ Collation: string }>`show collation like 'utf8mb4_%bin'`.execute(db);
  const names = new Set(rows.map((r) => r.Collation));
  const collation = ["utf8mb4_0900_bin", "utf8mb4_nopad_bin"].find((c) => names.has(c));
  if (collation === undefined) {
    throw new Error("the server has no NO PAD binary collation (MySQL 8 or MariaDB 10.2+ needed)");
  }
  return collation;
}

/**
 * GetJobStatistics in constant time: job_counts holds the number of jobs per (username, operation_type,
 * status), kept by every write in the same transaction as the change it counts, and backfilled here from
 * the jobs. Counting a million jobs took 367 ms (median) on SQLite. The windowed figures (finished in
 * the window, success rate, duration percentiles) read only the jobs the window bounds, through indexes
 * that hold every column they need. ListJobs by operation type gets its index too; ANALYZE gives the
 * planner the statistics to choose among them (SQLite never ran it: 30 ms instead of 1.7 ms for
 * username + status at a million jobs).
 */
function jobCounts(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      const options =
        dialect === "mysql"
          ? sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${sql.raw(await noPadBinCollation(db))}`
          : sql``;
      await db.schema
        .createTable("job_counts")
        .addColumn("username", "varchar(255)", (c) => c.notNull())
        .addColumn("operation_type", "varchar(255)", (c) => c.notNull())
        .addColumn("status", "varchar(16)", (c) => c.notNull())
        .addColumn("n", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("job_counts_pk", ["username", "operation_type", "status"])
        .modifyEnd(options)
        .execute();
      await sql`insert into job_counts (username, operation_type, status, n)
        select username, operation_type, status, count(*) from jobs group by username, operation_type, status`.execute(
        db,
      );
      // Finished jobs by completion time, with what the window's counts and durations need.
      await db.schema
        .createIndex("jobs_completed_window")
        .on("jobs")
        .columns(["completed_at", "status", "started_at", "created_at"])
        .execute();
      await db.schema
        .createIndex("jobs_user_completed_window")
        .on("jobs")
        .columns(["username", "completed_at", "status", "started_at", "created_at"])
        .execute();
      await db.schema
        .createIndex("jobs_operation_created")
        .on("jobs")
        .columns(["operation_type", "created_at", "job_id"])
        .execute();
      if (dialect === "sqlite") await sql`analyze`.execute(db);
      else await sql`analyze table jobs, job_counts`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex("jobs_operation_created").on("jobs").execute();
      await db.schema.dropIndex("jobs_user_completed_window").on("jobs").execute();
      await db.schema.dropIndex("jobs_completed_window").on("jobs").execute();
      await db.schema.dropTable("job_counts").execute();
    },
  };
}

/**
 * job_events.transition_revision: the event's revision where the status or the cancel flag differs
 * from the revision before (or there is none), NULL elsewhere, indexed with job_id, so a watcher
 * resuming after an old revision reads the few status transitions it missed, not every progress report
 * in between (20,000 snapshots of a chatty job). A column of its own rather than a flag beside
 * `revision`: with a flag both SQLite and MySQL kept choosing the (job_id, revision) index and reading
 * every row in the range.
 */
function transitionColumn(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("job_events").addColumn("transition_revision", "bigint").execute();
      await markTransitions(db as Kysely<Database>);
      await db.schema
        .createIndex("job_events_job_transition")
        .on("job_events")
        .columns(["job_id", "transition_revision"])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex("job_events_job_transition").on("job_events").execute();
      await db.schema.alterTable("job_events").dropColumn("transition_revision").execute();
    },
  };
}

/**
 * ListJobs with a status and an operation type: both equalities, then the page order, so a page reads
 * its rows and stops. Without it no index had both equalities followed by the page order: 5.1 ms on
 * MariaDB at a million jobs, where every other filter combination took at most 2.3 ms (0.55 ms with it).
 */
function typeStatusCreatedIndex(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createIndex("jobs_type_status_created")
        .on("jobs")
        .columns(["operation_type", "status", "created_at", "job_id"])
        .execute();
      if (dialect === "sqlite") await sql`analyze jobs`.execute(db);
      else await sql`analyze table jobs`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex("jobs_type_status_created").on("jobs").execute();
    },
  };
}

/**
 * duration_histogram (duration-histogram.ts): the finished jobs' durations per user (and for every user,
 * username '') and hour of completion, by DDSketch bucket, so GetJobStatistics ranks a large window from
 * its counters; and job_counts' every-user rows (counts.ts), so it counts every job from a few rows, built
 * from the jobs so far. The histogram is filled by 0012, which adds the operation type to its key (the
 * rebuild writes that shape).
 */
function durationHistogram(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<unknown>) {
      const options =
        dialect === "mysql"
          ? sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${sql.raw(await noPadBinCollation(db))}`
          : sql``;
      await db.schema
        .createTable("duration_histogram")
        .addColumn("username", "varchar(255)", (c) => c.notNull())
        .addColumn("slice_start", "bigint", (c) => c.notNull())
        .addColumn("bucket", "integer", (c) => c.notNull())
        .addColumn("n", "bigint", (c) => c.notNull())
        .addColumn("completed", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("duration_histogram_pk", ["username", "slice_start", "bucket"])
        .modifyEnd(options)
        .execute();
      await rebuildEveryUserCounts(db as Kysely<Database>, dialect);
      if (dialect === "sqlite") await sql`analyze job_counts`.execute(db);
      else await sql`analyze table job_counts, duration_histogram`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await sql`delete from job_counts where username in (${sql.join([...EVERY_USER_KEYS])})`.execute(db);
      await db.schema.dropTable("duration_histogram").execute();
    },
  };
}

/**
 * duration_histogram keyed by operation type as well (operation_type '' for every type), so GetJobStatistics
 * ranks each type's durations from its own counters; rebuilt from the jobs. The covering indexes of the
 * window's finished jobs gain operation_type, so the jobs read beside the histogram (the part of an hour
 * before its first whole hour, or a small window's every duration) are still read from the index alone.
 * Down keeps the every-type rows, which are 0010's histogram.
 */
function durationHistogramByType(dialect: Dialect): Migration {
  const histogram = (db: Kysely<unknown>, name: string, byType: boolean, options: ReturnType<typeof sql>) => {
    // Columns as plain strings: the two shapes differ by one key column.
    let t: CreateTableBuilder<string, string> = db.schema
      .createTable(name)
      .addColumn("username", "varchar(255)", (c) => c.notNull());
    if (byType) t = t.addColumn("operation_type", "varchar(255)", (c) => c.notNull());
    return t
      .addColumn("slice_start", "bigint", (c) => c.notNull())
      .addColumn("bucket", "integer", (c) => c.notNull())
      .addColumn("n", "bigint", (c) => c.notNull())
      .addColumn("completed", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint(
        `${name}_pk`,
        byType ? ["username", "operation_type", "slice_start", "bucket"] : ["username", "slice_start", "bucket"],
      )
      .modifyEnd(options)
      .execute();
  };
  // WITHOUT ROWID on SQLite: the rows clustered by their key, as InnoDB keeps them, so a window's counters
  // are one range read with no lookup per row (3x faster at 300,000 jobs, where the table has 690,000 rows).
  const tableOptions = async (db: Kysely<unknown>) =>
    dialect === "mysql"
      ? sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${sql.raw(await noPadBinCollation(db))}`
      : sql`without rowid`;
  const windowIndexes = async (db: Kysely<unknown>, byType: boolean) => {
    const columns = byType
      ? ["completed_at", "status", "operation_type", "started_at", "created_at"]
      : ["completed_at", "status", "started_at", "created_at"];
    // DROP INDEX ... ON is MySQL's; SQLite's index names are per schema.
    const drop = (name: string) =>
      dialect === "mysql" ? db.schema.dropIndex(name).on("jobs").execute() : db.schema.dropIndex(name).execute();
    await drop("jobs_completed_window");
    await db.schema.createIndex("jobs_completed_window").on("jobs").columns(columns).execute();
    await drop("jobs_user_completed_window");
    await db.schema
      .createIndex("jobs_user_completed_window")
      .on("jobs")
      .columns(["username", ...columns])
      .execute();
  };
  return {
    async up(db: Kysely<unknown>) {
      await db.schema.dropTable("duration_histogram").execute();
      await histogram(db, "duration_histogram", true, await tableOptions(db));
      await rebuildDurationHistogram(db as Kysely<Database>, dialect);
      await windowIndexes(db, true);
      if (dialect === "sqlite") await sql`analyze`.execute(db);
      else await sql`analyze table jobs, duration_histogram`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await histogram(db, "duration_histogram_0010", false, await tableOptions(db));
      await sql`insert into duration_histogram_0010 (username, slice_start, bucket, n, completed)
        select username, slice_start, bucket, n, completed from duration_histogram where operation_type = ''`.execute(
        db,
      );
      await db.schema.dropTable("duration_histogram").execute();
      await db.schema.alterTable("duration_histogram_0010").renameTo("duration_histogram").execute();
      await windowIndexes(db, false);
    },
  };
}

/**
 * What the completion estimate reads: the rate anchor of each job (written with its progress), and an
 * index for the history of an operation type, its last COMPLETED jobs by completed_at (without it each
 * refresh would read every completed job of the type).
 */
function completionEstimate(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("jobs").addColumn("rate_anchor_at", "bigint").execute();
      await db.schema.alterTable("jobs").addColumn("rate_anchor_progress", "double precision").execute();
      await db.schema
        .createIndex("jobs_type_status_completed")
        .on("jobs")
        .columns(["operation_type", "status", "completed_at"])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex("jobs_type_status_completed").on("jobs").execute();
      await db.schema.alterTable("jobs").dropColumn("rate_anchor_progress").execute();
      await db.schema.alterTable("jobs").dropColumn("rate_anchor_at").execute();
    },
  };
}

/**
 * The W3C traceparent of the CreateJob that made each job (NULL when that call was not traced), so the
 * spans of later rpcs on the job can link to it and GetJobDetails can name the job's trace.
 */
function traceContext(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("jobs").addColumn("trace_context", "varchar(55)").execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.alterTable("jobs").dropColumn("trace_context").execute();
    },
  };
}

/**
 * Webhooks, their outbox and its attempts. A delivery row is written in the transaction of the transition
 * it tells of (INSERT ... SELECT over the matching webhooks), so none is lost or made up; a dispatcher on
 * any replica claims due rows with a lease (a conditional UPDATE, safe on Galera), posts them, and
 * records each attempt. Unique (webhook, job, revision): a replay sends the same row again.
 */
function webhooks(dialect: Dialect): Migration {
  const mysql = dialect === "mysql";
  return {
    async up(db: Kysely<unknown>) {
      const options = mysql
        ? sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${sql.raw(await noPadBinCollation(db))}`
        : sql``;
      await db.schema
        .createTable("webhooks")
        .addColumn("webhook_id", "varchar(36)", (c) => c.primaryKey())
        .addColumn("owner", "varchar(255)", (c) => c.notNull())
        .addColumn("url", "text", (c) => c.notNull())
        .addColumn("secret", "varchar(64)", (c) => c.notNull())
        // ",type1,type2," ("" for every type) and ",completed,failed,": matched with instr() on both dialects.
        .addColumn("operation_types", "text", (c) => c.notNull())
        .addColumn("statuses", "varchar(64)", (c) => c.notNull())
        .addColumn("all_users", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .modifyEnd(options)
        .execute();
      let deliveries = db.schema.createTable("webhook_deliveries");
      deliveries = mysql
        ? deliveries.addColumn("delivery_seq", "bigint", (c) => c.autoIncrement().primaryKey())
        : deliveries.addColumn("delivery_seq", "integer", (c) => c.primaryKey().autoIncrement());
      await deliveries
        .addColumn("webhook_id", "varchar(36)", (c) => c.notNull())
        .addColumn("job_id", "varchar(36)", (c) => c.notNull())
        .addColumn("revision", "bigint", (c) => c.notNull())
        .addColumn("status", "varchar(16)", (c) => c.notNull())
        // pending | delivered | failed
        .addColumn("state", "varchar(16)", (c) => c.notNull())
        .addColumn("attempts", "integer", (c) => c.notNull())
        .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
        // When this round of attempts began (created, or replayed): the retry period counts from here.
        .addColumn("since", "bigint", (c) => c.notNull())
        .addColumn("lease_owner", "varchar(64)")
        .addColumn("lease_until", "bigint")
        .addColumn("delivered_at", "bigint")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .modifyEnd(options)
        .execute();
      await db.schema
        .createIndex("webhook_deliveries_key")
        .unique()
        .on("webhook_deliveries")
        .columns(["webhook_id", "job_id", "revision"])
        .execute();
      await db.schema
        .createIndex("webhook_deliveries_due")
        .on("webhook_deliveries")
        .columns(["state", "next_attempt_at"])
        .execute();
      await db.schema
        .createTable("webhook_attempts")
        .addColumn("delivery_seq", "bigint", (c) => c.notNull())
        .addColumn("attempt", "integer", (c) => c.notNull())
        .addColumn("at", "bigint", (c) => c.notNull())
        .addColumn("http_status", "integer")
        .addColumn("error", "text")
        .addColumn("latency_ms", "integer", (c) => c.notNull())
        .addPrimaryKeyConstraint("webhook_attempts_pk", ["delivery_seq", "attempt"])
        .modifyEnd(options)
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable("webhook_attempts").execute();
      await db.schema.dropTable("webhook_deliveries").execute();
      await db.schema.dropTable("webhooks").execute();
    },
  };
}

/**
 * SQLite: the (job_id, transition_revision) index holds only transitions (WHERE transition_revision IS
 * NOT NULL), the rows it is read for (transitionsBetween's range implies the condition, so SQLite uses
 * it). Every progress report wrote a NULL entry into it, a page of its own per job in each group's commit:
 * ReportProgress on 100 distinct jobs spent most of its time in the commit. MySQL has no partial indexes
 * (and keeps the full one).
 */
function partialTransitionIndex(dialect: Dialect): Migration {
  const index = async (db: Kysely<unknown>, where: string): Promise<void> => {
    await sql`drop index job_events_job_transition`.execute(db);
    await sql
      .raw(`create index job_events_job_transition on job_events (job_id, transition_revision)${where}`)
      .execute(db);
  };
  return {
    async up(db: Kysely<unknown>) {
      if (dialect === "sqlite") await index(db, " where transition_revision is not null");
    },
    async down(db: Kysely<unknown>) {
      if (dialect === "sqlite") await index(db, "");
    },
  };
}

/**
 * Marks the transitions among existing events, reading them in (job_id, revision) order a page at a
 * time (small columns only). Each event is compared with the job's previous stored event: the only
 * events ever pruned are unrecorded ones (heartbeats, throttled progress), which never change the
 * status or the cancel flag, so the previous stored event has the state the missing ones had.
 */
async function markTransitions(db: Kysely<Database>): Promise<void> {
  const PAGE = 5000;
  let after: { jobId: string; revision: number } | undefined;
  let previous: { jobId: string; status: string; cancel: number } | undefined;
  for (;;) {
    let q = db.selectFrom("job_events").select(["seq", "job_id", "revision", "status", "cancel_requested"]);
    if (after !== undefined) {
      const a = after;
      q = q.where((eb) =>
        eb.or([eb("job_id", ">", a.jobId), eb.and([eb("job_id", "=", a.jobId), eb("revision", ">", a.revision)])]),
      );
    }
    const rows = await q.orderBy("job_id").orderBy("revision").limit(PAGE).execute();
    const marked: number[] = [];
    for (const r of rows) {
      const cancel = Number(r.cancel_requested);
      if (
        previous === undefined ||
        previous.jobId !== r.job_id ||
        previous.status !== r.status ||
        previous.cancel !== cancel
      ) {
        marked.push(Number(r.seq));
      }
      previous = { jobId: r.job_id, status: r.status, cancel };
    }
    for (let i = 0; i < marked.length; i += 500) {
      await db
        .updateTable("job_events")
        .set({ transition_revision: sql<number>`revision` })
        .where("seq", "in", marked.slice(i, i + 500))
        .execute();
    }
    const last = rows.at(-1);
    if (last === undefined || rows.length < PAGE) return;
    after = { jobId: last.job_id, revision: Number(last.revision) };
  }
}

/**
 * The counts of every user summed per (status, operation_type) in index order: a covering scan instead of
 * a sort. With 1,000 users and 4 operation types (20,000 rows) GetJobStatistics over all jobs took 35 ms on
 * SQLite summing through a temporary B-tree, 1.7 ms through this index. And ListJobs of one user by status,
 * newest first, straight from an index range (10-30 ms at a million jobs on both databases without it).
 */
function countsAndUserStatusIndexes(): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createIndex("job_counts_status_operation")
        .on("job_counts")
        .columns(["status", "operation_type", "n"])
        .execute();
      await db.schema
        .createIndex("jobs_user_status_created")
        .on("jobs")
        .columns(["username", "status", "created_at", "job_id"])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex("jobs_user_status_created").on("jobs").execute();
      await db.schema.dropIndex("job_counts_status_operation").on("job_counts").execute();
    },
  };
}

/**
 * Applies every pending migration; throws an Error naming the failed migration. Safe when several
 * processes start at once, on every engine: on MySQL (and Galera, where GET_LOCK, which Kysely's
 * migrator takes, locks one node only) the run holds a lock row (withMigrationLock); on SQLite (where
 * Kysely takes no lock) it happens inside BEGIN IMMEDIATE, so a second process waits for the first to
 * commit and then finds nothing left to do.
 */
export async function migrateToLatest(open: OpenDatabase): Promise<void> {
  const migrator = new Migrator({ db: open.db, provider: migrationProvider(open.dialect) });
  const run = async (): Promise<void> => {
    const { error, results } = await migrator.migrateToLatest();
    if (error !== undefined) {
      const failed = results?.find((r) => r.status === "Error");
      const what = failed ? `migration ${failed.migrationName} failed` : "migrating the database failed";
      throw new Error(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  };
  if (open.dialect === "mysql") return withMigrationLock(open.db, run);

  await beginImmediate(open.db, open.sqlite);
  try {
    await run();
  } catch (error) {
    await sql`rollback`.execute(open.db).catch(() => undefined);
    throw error;
  }
  await sql`commit`.execute(open.db);
}

/**
 * BEGIN IMMEDIATE without blocking the event loop: busy_timeout is switched off while we wait, and
 * SQLITE_BUSY is retried with async sleeps, so a second connection in this same process (which a
 * synchronous busy-wait would starve) can finish first.
 */
async function beginImmediate(db: Kysely<Database>, sqlite: SqliteDatabase.Database): Promise<void> {
  const busyTimeout = sqlite.pragma("busy_timeout", { simple: true }) as number;
  sqlite.pragma("busy_timeout = 0");
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await sql`begin immediate`.execute(db);
        return;
      } catch (error) {
        if (!isSqliteBusy(error) || attempt >= 600) throw error;
        await sleep(50);
      }
    }
  } finally {
    sqlite.pragma(`busy_timeout = ${busyTimeout}`);
  }
}

function isSqliteBusy(error: unknown): boolean {
  return (
    typeof (error as { code?: unknown })?.code === "string" &&
    (error as { code: string }).code.startsWith("SQLITE_BUSY")
  );
}

/** The table holding the MySQL migration lock row (outside Kysely's migrations: it guards them). */
const LOCK_TABLE = "jobwatch_migration_lock";
/** A lock not renewed for this long belongs to a process that died: another may take it. */
const LOCK_TTL_MS = 30_000;
/** How often the holder renews its lock while migrations run. */
const LOCK_RENEW_MS = 5_000;
/** How long a process waits for another's migrations before giving up. */
const LOCK_WAIT_MS = 10 * 60_000;

/**
 * Runs `body` holding a cluster-wide lock: one row in LOCK_TABLE, taken with an INSERT that only one
 * process can make (the primary key; on Galera the losers of a simultaneous insert fail certification),
 * renewed while `body` runs, and deleted after. A row not renewed for LOCK_TTL_MS (its holder died)
 * is taken over with a conditional UPDATE. Works on one MySQL server and on a multi-primary cluster,
 * unlike GET_LOCK, which Galera does not replicate.
 */
export async function withMigrationLock(db: Kysely<Database>, body: () => Promise<void>): Promise<void> {
  const raw = db as unknown as Kysely<Record<string, { id: number; owner: string; expires_at: number }>>;
  // IF NOT EXISTS: every process runs this at once, and Galera orders the DDL cluster-wide.
  await sql`create table if not exists ${sql.table(LOCK_TABLE)} (
    id integer not null primary key, owner varchar(64) not null, expires_at bigint not null)`.execute(db);
  const owner = randomUUID();
  const started = Date.now();
  for (;;) {
    const now = Date.now();
    try {
      await raw
        .insertInto(LOCK_TABLE)
        .values({ id: 1, owner, expires_at: now + LOCK_TTL_MS })
        .execute();
      break;
    } catch (error) {
      if (!isLockContention(error)) throw error;
    }
    const taken = await raw
      .updateTable(LOCK_TABLE)
      .set({ owner, expires_at: now + LOCK_TTL_MS })
      .where("id", "=", 1)
      .where("expires_at", "<", now)
      .executeTakeFirst()
      .catch((error: unknown) => {
        if (isLockContention(error)) return { numUpdatedRows: 0n };
        throw error;
      });
    if (Number(taken.numUpdatedRows) === 1) break;
    if (now - started > LOCK_WAIT_MS) {
      throw new Error(
        `another process has held the migration lock for over ${LOCK_WAIT_MS / 60_000} minutes; ` +
          `if no jobwatch is migrating this database, delete the row: DELETE FROM ${LOCK_TABLE}`,
      );
    }
    await sleep(100 + Math.random() * 200);
  }
  const renew = setInterval(() => {
    void raw
      .updateTable(LOCK_TABLE)
      .set({ expires_at: Date.now() + LOCK_TTL_MS })
      .where("id", "=", 1)
      .where("owner", "=", owner)
      .execute()
      .catch(() => undefined);
  }, LOCK_RENEW_MS);
  try {
    await body();
  } finally {
    clearInterval(renew);
    await raw
      .deleteFrom(LOCK_TABLE)
      .where("id", "=", 1)
      .where("owner", "=", owner)
      .execute()
      .catch(() => undefined);
  }
}

/** The lock row exists already, or a simultaneous taker won (a deadlock, a Galera certification conflict). */
function isLockContention(error: unknown): boolean {
  const { code, errno } = (typeof error === "object" && error !== null ? error : {}) as {
    code?: unknown;
    errno?: unknown;
  };
  return code === "ER_DUP_ENTRY" || errno === 1062 || code === "ER_LOCK_DEADLOCK" || errno === 1213;
}
