// The live bar line of `jobwatch watch`, fitted to the terminal's width as it is seen (colour codes take no columns).
import cliTruncate from "cli-truncate";
import stringWidth from "string-width";

/** The parts of a bar line, most important first, as `fitBarLine` shortens them. */
export interface BarLineParts {
  /** The status, before the bar (never shortened). */
  status: string;
  /** Draws the bar `size` columns wide. */
  bar: (size: number) => string;
  /** Percentage and elapsed or queued time (never shortened). */
  facts: string[];
  /** The estimate in full ("ETA 10:31:02 (in 14s, from progress)") and short ("ETA 14s"); absent without one. */
  eta?: { full: string; short: string };
  /** Cancel requested, reconnecting: kept whole before phase and detail. */
  notes: string[];
  /** "phase: detail", the first part cut (with an ellipsis) when the line does not fit. */
  where: string;
  /** The separator between parts (may be coloured). */
  separator: string;
}

/** The bar's width when there is room, and the least it shrinks to. */
export const BAR_SIZE = 24;
const MIN_BAR_SIZE = 10;
/** Phase and detail cut shorter than this are left out: a few letters and an ellipsis say nothing. */
const MIN_WHERE = 8;

/**
 * The bar line within `columns` visible columns (one fewer, so writing it never wraps the cursor): the
 * whole line when it fits; else the short ETA; else phase and detail cut to the room left (or left out);
 * else a narrower bar; a terminal narrower than all that gets the line cut at its edge.
 */
export function fitBarLine(parts: BarLineParts, columns: number): string {
  const room = Math.max(1, columns - 1);
  const compose = (eta: string | undefined, where: string, barSize: number): string => {
    const after = [...parts.facts, ...(eta === undefined ? [] : [eta]), ...parts.notes, ...(where ? [where] : [])];
    return `${parts.status} ${parts.bar(barSize)}${after.join(parts.separator)}`;
  };
  const full = compose(parts.eta?.full, parts.where, BAR_SIZE);
  if (stringWidth(full) <= room) return full;
  const eta = parts.eta?.short;
  const withoutWhere = compose(eta, "", BAR_SIZE);
  if (parts.where) {
    const left = room - stringWidth(withoutWhere) - stringWidth(parts.separator);
    if (left >= MIN_WHERE) return compose(eta, cliTruncate(parts.where, left), BAR_SIZE);
  }
  if (stringWidth(withoutWhere) <= room) return withoutWhere;
  const narrow = Math.max(MIN_BAR_SIZE, BAR_SIZE - (stringWidth(withoutWhere) - room));
  return cliTruncate(compose(eta, "", narrow), room);
}
