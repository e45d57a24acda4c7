// How text a caller sent is measured against a limit and shown back in a message; used by every layer that validates.

/** Length in characters (code points), which is what the contract's limits count. */
export function chars(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

/** A value shown back in a message: quoted, shortened, control characters escaped. */
export function shown(value: string): string {
  const short = chars(value) > 60 ? `${[...value].slice(0, 60).join("")}...` : value;
  return `'${JSON.stringify(short).slice(1, -1).replace(/'/g, "\\'")}'`;
}
