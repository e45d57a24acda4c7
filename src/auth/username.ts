// The username rule: what may name the user a token acts as and a job belongs to (CreateJob and `token create` alike).
import { chars, shown } from "../text.js";

/** The most characters a username may have (proto/jobwatch/v1: username). */
export const USERNAME_MAX_CHARS = 200;

// C0, DEL and C1 control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Leading or trailing whitespace: MySQL's PAD SPACE collations (and people) cannot tell "alice " from "alice".
const EDGE_SPACE = /^\s|\s$/u;

/**
 * What is wrong with `value` as a username, worded as a field violation ("is required: ..."), or
 * undefined when it is a valid one: 1-200 characters, no control characters, no edge whitespace.
 * One rule for tokens and jobs, so every token's user can own jobs and see them.
 */
export function usernameProblem(value: string): string | undefined {
  if (value === "") return "is required: the user the job is submitted for (1 to 200 characters)";
  if (chars(value) > USERNAME_MAX_CHARS) return `must be at most ${USERNAME_MAX_CHARS} characters; got ${chars(value)}`;
  if (CONTROL.test(value)) return `must not contain control characters (newlines, tabs ...); got ${shown(value)}`;
  if (EDGE_SPACE.test(value)) return `must not start or end with whitespace; got ${shown(value)}`;
  return undefined;
}
