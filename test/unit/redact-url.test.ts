// redactUrl: a database URL as logs and error messages show it, with no password left in it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { redactUrl } from "../../src/store/connect.js";

test("passwords are masked however they are written; a URL without one is unchanged", () => {
  assert.equal(redactUrl("mysql://u:secret@h:3306/db"), "mysql://u:***@h:3306/db");
  assert.equal(redactUrl("mysql://u:p/w@h/db"), "mysql://u:***@h/db");
  assert.equal(redactUrl("mysql://u:p@w@h/db"), "mysql://u:***@h/db");
  assert.equal(redactUrl("mysql://u@h/db?password=secret&ssl=1"), "mysql://u@h/db?password=***&ssl=1");
  assert.equal(redactUrl("mysql://root@127.0.0.1:3306/test"), "mysql://root@127.0.0.1:3306/test");
  assert.equal(redactUrl("sqlite:data/jobwatch.db"), "sqlite:data/jobwatch.db");
});
