// Durations, one of each: the parser for settings and flags ("200", "30s", "720h"), and google.protobuf.Duration <-> ms.
// A leaf like errors.ts: it imports nothing of jobwatch's, so the server, the client and the CLI all use it.
import ms from "ms";

/** The rule every duration setting and flag follows, as a message or --help states it. */
export const DURATION_RULE = "a number with a unit (500ms, 30s, 5m, 720h, 2d); a bare number is milliseconds";

/**
 * Parses a duration into milliseconds: a bare number is milliseconds ("200"), anything else needs a
 * unit that `ms` reads ("1.5s", "5m", "720h", "2d"). Undefined when the text is not a duration; the
 * caller says which setting it was and what range it allows.
 */
export function parseDuration(text: string): number | undefined {
  const value = text.trim();
  if (value === "") return undefined;
  const parsed: unknown = /^\d+(\.\d+)?$/.test(value) ? Number(value) : ms(value as ms.StringValue);
  return typeof parsed === "number" && Number.isFinite(parsed) ? parsed : undefined;
}

/** A google.protobuf.Duration as the generated code holds it. */
export interface DurationMessage {
  seconds: number;
  nanos: number;
}

/** Milliseconds as google.protobuf.Duration: whole seconds plus nanos, both with the sign of `ms`. */
export function msToDuration(ms: number): DurationMessage {
  const seconds = Math.trunc(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** google.protobuf.Duration as milliseconds (fractions of a millisecond kept). */
export function durationToMs(duration: DurationMessage): number {
  return duration.seconds * 1000 + duration.nanos / 1e6;
}
