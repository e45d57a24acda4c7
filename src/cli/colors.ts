// Terminal colours for one output stream: on for a terminal, off for pipes and NO_COLOR.
import pc from "picocolors";

/** The colour functions of picocolors (all identity when colours are off). */
export type Colors = ReturnType<typeof pc.createColors>;

/**
 * Colours for one output stream: on only when it is a terminal and NO_COLOR is not set (FORCE_COLOR
 * turns them on anyway, for people who pipe into `less -R`).
 */
export function colorsFor(stream: NodeJS.WriteStream): Colors {
  const env = process.env;
  const forced = env["FORCE_COLOR"] !== undefined && env["FORCE_COLOR"] !== "0";
  const off = (env["NO_COLOR"] ?? "") !== "" || env["TERM"] === "dumb";
  return pc.createColors(forced || (stream.isTTY === true && !off));
}
