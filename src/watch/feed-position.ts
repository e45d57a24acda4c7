// A position in the job_events change feed that is exact although seqs commit out of order, and the
// WatchJobs cursor that carries it to a client and back.
import { InvalidArgumentError, OutOfRangeError } from "../errors.js";

/** A run of seqs, both ends included. */
export interface SeqRange {
  from: number;
  to: number;
}

/**
 * At most this many holes in one cursor. The change feed gives a hole up after seconds, but on Galera (each node
 * takes every third seq) that is a hole per write: 1,295 under load with one node stalled, where a cap of 1,000
 * made the next replica refuse the cursor (found by test/guarantees). Beyond it the oldest holes are merged.
 */
export const MAX_CURSOR_GAPS = 4000;
/** The longest after_cursor text accepted (4,000 holes take about 27 KB in the compact encoding). */
const MAX_CURSOR_CHARS = 48 * 1024;

/**
 * Which seqs have been seen: every seq up to `high` except those in `gaps` (sorted, disjoint). A seq
 * that commits late (MySQL takes an autoincrement at insert and shows it at commit) fills its gap when
 * it is seen, so a position never claims a change it has not delivered.
 */
export class FeedPosition {
  constructor(
    public high: number,
    public gaps: SeqRange[] = [],
  ) {}

  /** True when `seq` has been seen. */
  covers(seq: number): boolean {
    if (seq > this.high) return false;
    for (const g of this.gaps) {
      if (seq < g.from) return true;
      if (seq <= g.to) return false;
    }
    return true;
  }

  /** The highest seq below which everything has been seen: where a re-read starts. */
  get low(): number {
    const first = this.gaps[0];
    return first ? first.from - 1 : this.high;
  }

  /** Marks `seq` as seen (a seq above `high` leaves the seqs skipped over as gaps). */
  add(seq: number): void {
    if (seq > this.high) {
      if (seq > this.high + 1) this.gaps.push({ from: this.high + 1, to: seq - 1 });
      this.high = seq;
      return;
    }
    const i = this.gaps.findIndex((g) => g.from <= seq && seq <= g.to);
    if (i < 0) return;
    const g = this.gaps[i] as SeqRange;
    const parts: SeqRange[] = [];
    if (g.from < seq) parts.push({ from: g.from, to: seq - 1 });
    if (seq < g.to) parts.push({ from: seq + 1, to: g.to });
    this.gaps.splice(i, 1, ...parts);
  }

  /** An independent copy. */
  clone(): FeedPosition {
    return new FeedPosition(
      this.high,
      this.gaps.map((g) => ({ ...g })),
    );
  }

  /** The position that has seen what either has seen. */
  union(other: FeedPosition): FeedPosition {
    const high = Math.max(this.high, other.high);
    // A seq is unseen by the union when neither has seen it: intersect the unseen sets.
    const unseen = (p: FeedPosition): SeqRange[] =>
      p.high < high ? [...p.gaps, { from: p.high + 1, to: high }] : p.gaps;
    const a = unseen(this);
    const b = unseen(other);
    const gaps: SeqRange[] = [];
    let i = 0;
    let j = 0;
    while (i < a.length && j < b.length) {
      const x = a[i] as SeqRange;
      const y = b[j] as SeqRange;
      const from = Math.max(x.from, y.from);
      const to = Math.min(x.to, y.to);
      if (from <= to) gaps.push({ from, to });
      if (x.to < y.to) i++;
      else j++;
    }
    return new FeedPosition(high, gaps);
  }

  /** True when this position has seen everything `other` has. */
  includes(other: FeedPosition): boolean {
    if (other.high > this.high) return false;
    // Every gap of ours must lie inside a gap of other's.
    return this.gaps.every((g) => other.gaps.some((o) => o.from <= g.from && g.to <= o.to) || g.from > other.high);
  }
}

/** A decoded WatchJobs cursor: a feed position and when it was made. */
export interface Cursor {
  position: FeedPosition;
  at: number;
}

/** "2": holes as base-36 distances from the previous one (compact); "1" (holes as decimal ranges) is still read. */
const CURSOR_VERSION = "2";
/** How far ahead of this server's clock a cursor's stamp may be (another replica's clock running fast). */
const MAX_CLOCK_SKEW_MS = 60_000;

/**
 * The holes a cursor carries: at most `max`, the oldest merged into one beyond that. A merged hole claims less
 * than was seen, so a stream resumed from it may get some old changes again, never miss one.
 */
function mergeOldest(gaps: readonly SeqRange[], max: number): readonly SeqRange[] {
  if (gaps.length <= max) return gaps;
  const cut = gaps.length - max;
  return [{ from: gaps[0]!.from, to: gaps[cut]!.to }, ...gaps.slice(cut + 1)];
}

/** The opaque cursor a client passes back as after_cursor: never more holes or characters than decodeCursor takes. */
export function encodeCursor(position: FeedPosition, at: number): string {
  for (let max = MAX_CURSOR_GAPS; ; max = Math.floor(max / 2)) {
    let previous = 0;
    const gaps = mergeOldest(position.gaps, max)
      .map((g) => {
        const item = `${(g.from - previous).toString(36)}${g.to === g.from ? "" : `-${(g.to - g.from).toString(36)}`}`;
        previous = g.to + 1;
        return item;
      })
      .join(",");
    const text = Buffer.from(`${CURSOR_VERSION}.${at}.${position.high}.${gaps}`).toString("base64url");
    if (text.length <= MAX_CURSOR_CHARS || max <= 1) return text;
  }
}

/**
 * Reads a cursor; INVALID_ARGUMENT when it is not one of ours, OUT_OF_RANGE when it is older than
 * `maxAgeMs` (the changes after it may have been pruned: a silent gap is worse than starting again).
 */
export function decodeCursor(text: string, now: number, maxAgeMs: number): Cursor {
  const bad = (): InvalidArgumentError =>
    new InvalidArgumentError([
      {
        field: "after_cursor",
        description: "is not a cursor from WatchJobs: pass the cursor of a message you received, or leave it empty",
      },
    ]);
  if (text.length > MAX_CURSOR_CHARS) throw bad();
  const parts = Buffer.from(text, "base64url").toString("utf8").split(".");
  if (parts.length !== 4 || (parts[0] !== CURSOR_VERSION && parts[0] !== "1")) throw bad();
  const relative = parts[0] === CURSOR_VERSION;
  const at = Number(parts[1]);
  const high = Number(parts[2]);
  if (!Number.isSafeInteger(at) || !Number.isSafeInteger(high) || high < 0 || at < 0) throw bad();
  const gaps: SeqRange[] = [];
  if (parts[3] !== "") {
    const items = (parts[3] as string).split(",");
    if (items.length > MAX_CURSOR_GAPS) throw bad();
    let previous = 0;
    for (const item of items) {
      const [a = "", b] = item.split("-");
      // Version 1: "from-to" in decimal; 2: the distance from the previous hole's end, and the hole's width, base 36.
      const from =
        relative && /^[0-9a-z]+$/.test(a) ? previous + Number.parseInt(a, 36) : relative ? Number.NaN : Number(a);
      const to =
        b === undefined
          ? from
          : relative
            ? /^[0-9a-z]+$/.test(b)
              ? from + Number.parseInt(b, 36)
              : Number.NaN
            : Number(b);
      if (
        !Number.isSafeInteger(from) ||
        !Number.isSafeInteger(to) ||
        from < Math.max(previous, 1) ||
        to < from ||
        to >= high
      ) {
        throw bad();
      }
      gaps.push({ from, to });
      previous = to + 1;
    }
  }
  // A cursor made on a replica whose clock runs ahead is fine; one from further ahead would never expire
  // and could resume past feed entries already pruned, a silent gap.
  if (at - now > MAX_CLOCK_SKEW_MS) {
    throw new OutOfRangeError(
      `after_cursor is stamped ${Math.round((at - now) / 1000)} s in the future by this server's clock, more ` +
        `than the ${MAX_CLOCK_SKEW_MS / 1000} s of clock difference allowed between replicas: start again ` +
        "without a cursor (you get a fresh snapshot), and check the replicas' clocks",
    );
  }
  if (now - at > maxAgeMs) {
    throw new OutOfRangeError(
      `after_cursor is ${Math.round((now - at) / 1000)} s old and the server keeps changes for ` +
        `${Math.round(maxAgeMs / 1000)} s: start again without a cursor (you get a fresh snapshot)`,
    );
  }
  return { position: new FeedPosition(high, gaps), at };
}
