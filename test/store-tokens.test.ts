// Token queries against real databases.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DIALECTS } from "./helpers/databases.js";
import { setup } from "./helpers/store.js";

for (const dialect of DIALECTS) {
  describe(`store tokens on ${dialect}`, () => {
    test("tokens: create, list, revoke once, active ones, count", async (t) => {
      const { store, clock } = await setup(t, dialect);
      assert.equal(await store.countTokens(), 0);
      const t1 = await store.createToken({ tokenId: "tok1", username: "admin", role: "admin", secretHash: "h1" });
      clock.advance(1);
      await store.createToken({ tokenId: "tok2", username: "worker", role: "service", secretHash: "h2" });
      assert.deepEqual(t1, {
        tokenId: "tok1",
        username: "admin",
        role: "admin",
        createdAt: clock.t - 1,
        revokedAt: null,
      });
      assert.deepEqual(
        (await store.listTokens()).map((x) => x.tokenId),
        ["tok1", "tok2"],
      );
      clock.advance(5);
      const revoked = await store.revokeToken("tok1");
      assert.equal(revoked.revokedAt, clock.t);
      clock.advance(5);
      assert.equal(
        (await store.revokeToken("tok1")).revokedAt,
        revoked.revokedAt,
        "revoking twice keeps the first time",
      );
      await assert.rejects(store.revokeToken("nope"), { name: "NotFoundError", message: "token nope not found" });
      assert.deepEqual(await store.activeTokens(), [
        { tokenId: "tok2", username: "worker", role: "service", secretHash: "h2" },
      ]);
      assert.equal(await store.countTokens(), 2);
      await assert.rejects(store.createToken({ tokenId: "tok3", username: "x", role: "admin", secretHash: "h2" }));
    });
  });
}
