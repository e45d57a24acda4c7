// The watch bar line fitted to 80 and 120 columns by visible width, colour codes on (issue 24, item 1).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { stripVTControlCharacters } from "node:util";
import pc from "picocolors";
import stringWidth from "string-width";
import { BAR_SIZE, type BarLineParts, fitBarLine } from "../../src/cli/bar-line.js";

const c = pc.createColors(true);

/** The parts `jobwatch watch` draws for a RUNNING job at 40% with an estimate, coloured as on a terminal. */
function parts(overrides: Partial<BarLineParts> = {}): BarLineParts {
  return {
    status: c.blue("RUNNING  "),
    bar: (size) => c.cyan("█".repeat(Math.round(size * 0.4))) + c.dim("░".repeat(size - Math.round(size * 0.4))),
    facts: ["  40%", "elapsed 1m 2s"],
    eta: { full: "ETA 10:31:02 (in 14s, from progress)", short: "ETA 14s" },
    notes: [],
    where: "semantic: 200/500 files indexed",
    separator: c.dim(" | "),
    ...overrides,
  };
}

/** What the terminal shows of a line. */
const visible = (line: string) => stripVTControlCharacters(line);

describe("fitBarLine", () => {
  test("the colour codes are there, and are what a character count would miscount", () => {
    const line = fitBarLine(parts(), 120);
    assert.notEqual(line, visible(line), "colours on");
    assert.ok(line.length > 120, `the raw string is longer than the terminal: ${line.length}`);
  });

  test("at 120 columns a line that fits shows whole: full ETA, phase and detail", () => {
    const line = visible(fitBarLine(parts({ where: "semantic: 200/500" }), 120));
    assert.equal(
      line,
      `RUNNING   ${"█".repeat(10)}${"░".repeat(BAR_SIZE - 10)}  40% | elapsed 1m 2s | ETA 10:31:02 (in 14s, from progress) | semantic: 200/500`,
    );
    assert.equal(stringWidth(line), 114);
  });

  test("at 120 columns a longer line takes the short ETA and keeps phase and detail whole", () => {
    const line = fitBarLine(parts(), 120);
    const shown = visible(line);
    assert.equal(
      shown,
      `RUNNING   ${"█".repeat(10)}${"░".repeat(BAR_SIZE - 10)}  40% | elapsed 1m 2s | ETA 14s | semantic: 200/500 files indexed`,
    );
    assert.ok(stringWidth(line) <= 119, `within 119 columns: ${stringWidth(line)}`);
  });

  test("at 80 columns: the short ETA, then phase and detail cut with an ellipsis to the room left", () => {
    const line = fitBarLine(parts(), 80);
    const shown = visible(line);
    assert.equal(
      shown,
      `RUNNING   ${"█".repeat(10)}${"░".repeat(BAR_SIZE - 10)}  40% | elapsed 1m 2s | ETA 14s | semantic: …`,
    );
    assert.equal(stringWidth(line), 79, `uses the line but the last column: ${shown}`);
    const shorter = visible(fitBarLine(parts({ facts: ["  40%", "elapsed 3s"] }), 80));
    assert.match(shorter, /\| ETA 14s \| semantic: 200…$/, shorter);
  });

  test("at 80 columns with a note: the note is kept whole, phase and detail give way", () => {
    const line = fitBarLine(parts({ notes: [c.magenta("cancel requested")] }), 80);
    const shown = visible(line);
    assert.match(shown, /\| ETA 14s \| cancel requested( \| sem.*…)?$/, shown);
    assert.ok(stringWidth(line) <= 79, `${stringWidth(line)}: ${shown}`);
  });

  test("without an estimate there is no ETA, and the rest fits as before", () => {
    const { eta: _eta, ...rest } = parts();
    for (const columns of [80, 120]) {
      const shown = visible(fitBarLine(rest, columns));
      assert.doesNotMatch(shown, /ETA/);
      assert.ok(stringWidth(shown) <= columns - 1, `${columns}: ${shown}`);
      assert.match(shown, /\| elapsed 1m 2s \| sem/);
    }
  });

  test("a terminal too narrow for the facts gets a narrower bar, then the line cut at its edge", () => {
    const line = fitBarLine(parts(), 50);
    assert.ok(stringWidth(line) <= 49, visible(line));
    assert.match(visible(line), /^RUNNING /);
  });
});
