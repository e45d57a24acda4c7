// Removes secrets (bearer tokens, jobwatch tokens, JWTs, authorization header values) from text bound for a log.

const REDACTED = "[REDACTED]";

// Order matters: the header value first (it may hold a token in any shape, even with a tab or no
// space after "Bearer"), then the token shapes wherever else they appear (an error echoing a value).
const PATTERNS: readonly [RegExp, string][] = [
  // `authorization: <value>`, `"authorization":["<value>"]`, `authorization=<value>`, and Node's
  // inspect of a Map, `'authorization' => [ '<value>' ]`: the value up to the end of the quoted string
  // or line; a grpc-js "Failed to add metadata entry authorization: ..." line loses the rest of its line,
  // which is the price of never printing the value.
  [/(authorization["']?\s*(?:=>|[:=])\s*\[?\s*["']?)[^"'\r\n\]}]*/gi, `$1${REDACTED}`],
  [/(bearer)[\s:]*[^\s"',;\]}]+/gi, `$1 ${REDACTED}`],
  [/\bjw_([0-9a-f]{12})_[A-Za-z0-9_-]+/g, `jw_$1_${REDACTED}`],
  // A JWT: a base64url JSON header ("eyJ" is `{"`), a payload and an optional signature.
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*/g, `[REDACTED JWT]`],
];

/** `text` with every authorization value, bearer token, jobwatch token and JWT replaced by a marker. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}
