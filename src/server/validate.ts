// Request validation: the limits documented in the contract, each violation saying what to fix.
import { USERNAME_MAX_CHARS, usernameProblem } from "../auth/username.js";
import type { FieldViolation } from "../errors.js";
import { InvalidArgumentError } from "../errors.js";
import { chars, shown } from "../text.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const OPERATION_TYPE = /^[A-Za-z0-9_.-]+$/;
// C0, DEL and C1 control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// The same but newline and tab, which multi-line text (a detail, an error, a reason) may hold.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_BUT_NEWLINE_TAB = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
// Leading or trailing whitespace: MySQL's PAD SPACE collations (and people) cannot tell "alice " from "alice".
const EDGE_SPACE = /^\s|\s$/u;

/** The documented limits of request fields (proto/jobwatch/v1/*.proto). */
export const LIMITS = {
  operationType: 100,
  username: USERNAME_MAX_CHARS,
  phase: 100,
  detail: 1000,
  error: 16384,
  resultBytes: 65536,
  /** How deep objects and arrays may nest in a result (ts-proto's decoder stops at 33 levels of objects). */
  resultDepth: 32,
  resource: 200,
  reason: 1000,
  pageSizeDefault: 50,
  pageSizeMax: 100,
  /** GetJobStatistics' window: 10 years of 365.25 days. */
  statisticsWindowSeconds: 315_576_000,
} as const;

/** The range of google.protobuf.Timestamp in epoch ms: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z. */
const TIMESTAMP_RANGE_MS = { min: -62_135_596_800_000, max: 253_402_300_799_999 } as const;

/** How deep objects and arrays nest in a JSON value: 0 for a scalar, 1 for {} or [] of scalars. */
function jsonDepth(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  let deepest = 0;
  for (const item of Object.values(value)) deepest = Math.max(deepest, jsonDepth(item));
  return deepest + 1;
}

/**
 * What is wrong with a result nested too deep: shared by validation and by the request decoder, which
 * refuses the deepest bodies before validation runs (and cannot say how deep they were).
 */
export function nestingDescription(depth?: number): string {
  const got = depth === undefined ? "" : `; got ${depth}`;
  return `objects and arrays may nest at most ${LIMITS.resultDepth} levels deep${got} (flatten it, or store it elsewhere)`;
}

/** The message of a job_id (or other UUID field) that is not a UUID. */
function notUuidMessage(value: string): string {
  return `must be a UUID like 3f0e2c1a-9b7d-4c2e-8f1a-2b3c4d5e6f70; got ${shown(value)}`;
}

/** Calls `report` for each value under `value` that JSON cannot hold exactly (see RequestValidator.result). */
function unrepresentable(value: unknown, path: string, report: (field: string, description: string) => void): void {
  if (value === undefined) {
    report(path, "is a google.protobuf.Value with no kind set, which has no JSON form; set null_value for null");
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      report(path, `is ${value}, which JSON cannot hold (it would read back as null); send a string or null`);
    } else if (Object.is(value, -0)) {
      report(path, "is -0, which JSON cannot hold apart from 0 (it would read back as 0); send 0 or a string");
    }
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) unrepresentable(value[i], `${path}[${i}]`, report);
  } else if (typeof value === "object" && value !== null) {
    for (const key of Object.keys(value)) {
      if (key === "__proto__") {
        report(`${path}.${key}`, "the key '__proto__' is not accepted: JavaScript readers drop it; rename it");
        continue;
      }
      unrepresentable((value as Record<string, unknown>)[key], `${path}.${key}`, report);
    }
  }
}

/**
 * Collects the violations of one request so the caller learns every bad field at once; `check()` throws
 * InvalidArgumentError (INVALID_ARGUMENT with a google.rpc.BadRequest) when there is any.
 */
export class RequestValidator {
  private readonly violations: FieldViolation[] = [];

  /** Records one violation. */
  add(field: string, description: string): void {
    this.violations.push({ field, description });
  }

  /** Throws when any violation was recorded. */
  check(): void {
    if (this.violations.length > 0) throw new InvalidArgumentError([...this.violations]);
  }

  /**
   * Refuses control characters in free text. They are refused here, at the API, rather than escaped
   * wherever text is shown, because jobwatch does not own every place it is shown: grpcurl, dashboards
   * and clients in other languages print these fields too, and an escape sequence in a cancel reason
   * could drive the terminal of whoever reads it (OSC 52 sets the clipboard). `multiline` lets newline
   * and tab through.
   */
  private noControls(field: string, value: string, multiline: boolean): void {
    const match = (multiline ? CONTROL_BUT_NEWLINE_TAB : CONTROL).exec(value);
    if (match) {
      const code = match[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
      this.add(
        field,
        `must not contain control characters${multiline ? " other than newline and tab" : ""}; got U+${code} at character ${[...value.slice(0, match.index)].length + 1}`,
      );
    }
  }

  /** Refuses leading and trailing whitespace in a name that is compared exactly. */
  private noEdgeSpace(field: string, value: string): boolean {
    if (!EDGE_SPACE.test(value)) return true;
    this.add(field, `must not start or end with whitespace; got ${shown(value)}`);
    return false;
  }

  /** A required UUID, normalized to lowercase. */
  uuid(field: string, value: string): string {
    if (!UUID.test(value)) {
      this.add(field, notUuidMessage(value));
      return value;
    }
    return value.toLowerCase();
  }

  /** The job_id of any rpc. */
  jobId(value: string): string {
    return this.uuid("job_id", value);
  }

  /** operation_type: 1-100 of [A-Za-z0-9_.-]. */
  operationType(value: string, field = "operation_type"): string {
    if (value === "") {
      this.add(
        field,
        "is required: name the operation, e.g. 'add_golden_repo' (1 to 100 letters, digits, '_', '-' or '.')",
      );
    } else if (chars(value) > LIMITS.operationType) {
      this.add(field, `must be at most ${LIMITS.operationType} characters; got ${chars(value)}`);
    } else if (!OPERATION_TYPE.test(value)) {
      this.add(
        field,
        `may contain only letters, digits, '_', '-' and '.', e.g. 'add_golden_repo'; got ${shown(value)}`,
      );
    }
    return value;
  }

  /** username: the one username rule (src/auth/username.ts). */
  username(value: string, field = "username"): string {
    const problem = usernameProblem(value);
    if (problem !== undefined) this.add(field, problem);
    return value;
  }

  /** progress: 0-100. */
  progress(value: number): number {
    if (!Number.isInteger(value) || value < 0 || value > 100) {
      this.add("progress", `must be a percentage from 0 to 100; got ${value}`);
    }
    return value;
  }

  /** An optional string with a maximum length in characters; undefined stays undefined. */
  maxLength(field: string, value: string | undefined, max: number, what: string): string | undefined {
    if (value !== undefined && chars(value) > max) {
      this.add(field, `must be at most ${max} characters (${what}); got ${chars(value)}`);
    }
    return value;
  }

  /** phase: at most 100 characters, one line. */
  phase(value: string | undefined): string | undefined {
    if (value !== undefined) this.noControls("phase", value, false);
    return this.maxLength("phase", value, LIMITS.phase, "a short name such as 'semantic'");
  }

  /** detail: at most 1000 characters, no control characters but newline and tab. */
  detail(value: string | undefined): string | undefined {
    if (value !== undefined) this.noControls("detail", value, true);
    return this.maxLength("detail", value, LIMITS.detail, "a short line such as '150/500 files indexed'");
  }

  /** The error of FailJob: 1-16384 characters. */
  errorText(value: string): string {
    if (value === "") {
      this.add("error", "is required: say what went wrong, for the user (1 to 16384 characters)");
    } else if (chars(value) > LIMITS.error) {
      this.add(
        "error",
        `must be at most ${LIMITS.error} characters; got ${chars(value)} (put the full log elsewhere and say where)`,
      );
    } else {
      this.noControls("error", value, true);
    }
    return value;
  }

  /**
   * The result of CompleteJob: at most 32 levels deep and 65536 bytes as JSON; undefined means no result. It is
   * stored as JSON and must come back as sent, so what JSON cannot hold is refused, never changed:
   * NaN and Infinity (JSON.stringify makes them null), a "__proto__" key (a JavaScript object drops it),
   * a Value with no kind set.
   */
  result(value: { [key: string]: unknown } | undefined): { [key: string]: unknown } | null {
    if (value === undefined) return null;
    const depth = jsonDepth(value);
    if (depth > LIMITS.resultDepth) {
      this.add("result", nestingDescription(depth));
      return value;
    }
    const before = this.violations.length;
    unrepresentable(value, "result", (field, description) => {
      if (this.violations.length - before < 3) this.add(field, description);
    });
    if (this.violations.length > before) return value;
    const bytes = Buffer.byteLength(JSON.stringify(value), "utf8");
    if (bytes > LIMITS.resultBytes) {
      this.add(
        "result",
        `its JSON encoding must be at most ${LIMITS.resultBytes} bytes; got ${bytes} (store large output elsewhere and put a reference in the result)`,
      );
    }
    return value;
  }

  /** request_id: a UUID when set. */
  requestId(value: string | undefined): string | undefined {
    return value === undefined ? undefined : this.uuid("request_id", value);
  }

  /** resource: at most 200 characters; empty means none. */
  resource(value: string | undefined): string | undefined {
    if (value === undefined || value === "") return undefined;
    if (CONTROL.test(value)) {
      this.add("resource", `must not contain control characters; got ${shown(value)}`);
    } else {
      this.noEdgeSpace("resource", value);
    }
    return this.maxLength("resource", value, LIMITS.resource, "e.g. a repository alias");
  }

  /** The reason of CancelJob: at most 1000 characters; empty means none. */
  reason(value: string | undefined): string | undefined {
    if (value === undefined || value === "") return undefined;
    this.noControls("reason", value, true);
    return this.maxLength("reason", value, LIMITS.reason, "one or two sentences");
  }

  /**
   * An optional google.protobuf.Timestamp (a Date once decoded) as epoch ms. Seconds far out of range
   * decode to an Invalid Date (NaN), which must not reach a query, so anything outside Timestamp's
   * documented range is refused.
   */
  timestamp(field: string, value: Date | undefined): number | undefined {
    if (value === undefined) return undefined;
    const ms = value.getTime();
    if (!(ms >= TIMESTAMP_RANGE_MS.min && ms <= TIMESTAMP_RANGE_MS.max)) {
      const got = Number.isNaN(ms) ? "a time far outside that range" : value.toISOString();
      this.add(field, `must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, or unset; got ${got}`);
      return undefined;
    }
    return ms;
  }

  /** GetJobStatistics' window in ms: positive and at most 10 years (a longer one is a client bug, not a query). */
  statisticsWindow(ms: number): number {
    if (!(ms > 0)) {
      this.add("window", "must be a positive duration, e.g. 86400s for the last 24 hours; leave it unset for 24 hours");
    } else if (ms > LIMITS.statisticsWindowSeconds * 1000) {
      this.add(
        "window",
        `must be at most ${LIMITS.statisticsWindowSeconds}s (10 years); got ${ms / 1000}s; leave it unset for 24 hours`,
      );
    }
    return ms;
  }

  /** page_size: 0 means the default, above the maximum is clamped, negative is invalid. */
  pageSize(
    value: number,
    sizes: { default: number; max: number } = { default: LIMITS.pageSizeDefault, max: LIMITS.pageSizeMax },
  ): number {
    if (value < 0) {
      this.add(
        "page_size",
        `must not be negative; pass 0 for the default of ${sizes.default}, at most ${sizes.max}; got ${value}`,
      );
      return sizes.default;
    }
    if (value === 0) return sizes.default;
    return Math.min(value, sizes.max);
  }
}
