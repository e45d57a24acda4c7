// The command the CLI prints for a person to type: `jobwatch` only when that name on PATH is this program.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { commandName } from "../../src/cli/command-name.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SCRIPT = join(ROOT, "src", "cli", "main.ts");

describe("commandName", () => {
  const dir = mkdtempSync(join(tmpdir(), "jobwatch-command-name-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("in the checkout, with no jobwatch on PATH: npx jobwatch", () => {
    assert.equal(commandName({ PATH: "" }, ROOT, SCRIPT), "npx jobwatch");
    assert.equal(commandName({ PATH: "" }, join(ROOT, "src"), SCRIPT), "npx jobwatch");
  });

  test("outside it: node with the built CLI's absolute path", () => {
    assert.equal(commandName({ PATH: "" }, dir, SCRIPT), `node ${join(ROOT, "dist", "cli", "main.js")}`);
  });

  test("jobwatch on PATH that is this program (npm link, a global install): jobwatch", () => {
    const script = join(dir, "main.js");
    writeFileSync(script, "", { mode: 0o755 });
    const linkDir = mkdtempSync(join(dir, "bin-"));
    symlinkSync(script, join(linkDir, "jobwatch"));
    assert.equal(commandName({ PATH: linkDir }, dir, script), "jobwatch");
  });

  test("another program named jobwatch first on PATH: not trusted", () => {
    const other = mkdtempSync(join(dir, "other-"));
    writeFileSync(join(other, "jobwatch"), "#!/bin/sh\necho another\n", { mode: 0o755 });
    assert.equal(commandName({ PATH: other }, ROOT, SCRIPT), "npx jobwatch");
  });
});
