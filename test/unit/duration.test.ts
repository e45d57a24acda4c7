// One duration rule for settings and flags, and one google.protobuf.Duration <-> ms conversion.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseDurationFlag, parseNonNegativeDurationFlag } from "../../src/cli/client-options.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { durationToMs, msToDuration, parseDuration } from "../../src/duration.js";

describe("parseDuration", () => {
  test("a bare number is milliseconds; a unit is read by ms", () => {
    assert.equal(parseDuration("200"), 200);
    assert.equal(parseDuration(" 1.5 "), 1.5);
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration("5m"), 300_000);
    assert.equal(parseDuration("720h"), 2_592_000_000);
    assert.equal(parseDuration("2d"), 172_800_000);
  });

  test("anything else is not a duration", () => {
    for (const text of ["", "  ", "soon", "5 parsecs", "1e3x", "NaN"])
      assert.equal(parseDuration(text), undefined, text);
  });

  test("settings and flags read the same text the same way", () => {
    for (const [text, ms] of [
      ["200", 200],
      ["30s", 30_000],
      ["2h", 7_200_000],
    ] as const) {
      assert.equal(loadConfig({ JOBWATCH_CANCEL_GRACE: text }).cancelGraceMs, ms, `JOBWATCH_CANCEL_GRACE=${text}`);
      assert.equal(parseDurationFlag(text), ms, `--timeout ${text}`);
    }
  });

  test("bad values say which setting and what to write", () => {
    assert.throws(() => loadConfig({ JOBWATCH_RETENTION: "forever" }), {
      name: ConfigError.name,
      message: /^JOBWATCH_RETENTION 'forever' is not a duration: use a number with a unit \(500ms, 30s/,
    });
    assert.throws(() => parseDurationFlag("forever"), /expected a duration: a number with a unit/);
    assert.throws(() => parseDurationFlag("0"), /expected a duration above zero/);
    assert.equal(parseNonNegativeDurationFlag("0"), 0);
    assert.throws(() => parseNonNegativeDurationFlag("-5m"), /expected a duration/);
  });
});

describe("google.protobuf.Duration <-> ms", () => {
  test("whole seconds and nanos, with the sign of the value", () => {
    assert.deepEqual(msToDuration(0), { seconds: 0, nanos: 0 });
    assert.deepEqual(msToDuration(1500), { seconds: 1, nanos: 500_000_000 });
    assert.deepEqual(msToDuration(86_400_000), { seconds: 86_400, nanos: 0 });
    assert.deepEqual(msToDuration(-1500), { seconds: -1, nanos: -500_000_000 });
    assert.deepEqual(msToDuration(0.25), { seconds: 0, nanos: 250_000 });
  });

  test("round trip", () => {
    for (const ms of [0, 1, 999, 1000, 1500, 123_456_789, -42, 0.5]) assert.equal(durationToMs(msToDuration(ms)), ms);
    assert.equal(durationToMs({ seconds: 2, nanos: 1_000_000 }), 2001);
  });
});
