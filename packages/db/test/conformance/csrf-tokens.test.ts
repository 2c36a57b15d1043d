import { expect, it } from "vitest";
import { InvalidError } from "../../src/index.js";
import { describeEachBackend } from "../../src/testing/database.js";
import { now, secondsBetween } from "../../src/timestamps.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeEachBackend("CSRF tokens", (t) => {
  const tokens = () => t.db.csrfTokens;

  it("issues a random token for a client, valid for an hour by default", async () => {
    const before = now();
    const token = await tokens().createOrUpdate("client-1");
    expect(token.client).toBe("client-1");
    expect(token.token).toMatch(/^[0-9a-f]{64}$/);
    const lifetime = secondsBetween(token.expiration, before);
    expect(lifetime).toBeGreaterThanOrEqual(3600);
    expect(secondsBetween(token.expiration, token.created)).toBeCloseTo(3600, 6);
    expect(await tokens().getForClient("client-1")).toEqual(token);
  });

  it("replaces the client's token, keeping one row per client", async () => {
    const first = await tokens().createOrUpdate("client-1");
    const second = await tokens().createOrUpdate("client-1", { expires_in_seconds: 60 });
    expect(second.id).toBe(first.id);
    expect(second.token).not.toBe(first.token);
    expect(second.updated > first.updated).toBe(true);
    expect(secondsBetween(second.expiration, second.updated)).toBeCloseTo(60, 6);
    expect(await tokens().getForClient("client-1")).toEqual(second);
  });

  it("keeps clients apart", async () => {
    const a = await tokens().createOrUpdate("a");
    const b = await tokens().createOrUpdate("b");
    expect(a.token).not.toBe(b.token);
    expect((await tokens().getForClient("a"))?.token).toBe(a.token);
    expect((await tokens().getForClient("b"))?.token).toBe(b.token);
  });

  it("gives concurrent issuers for one client one row holding one of their tokens", async () => {
    const issued = await Promise.all(Array.from({ length: 15 }, () => tokens().createOrUpdate("busy")));
    expect(new Set(issued.map((x) => x.id)).size).toBe(1);
    const current = await tokens().getForClient("busy");
    expect(issued.map((x) => x.token)).toContain(current?.token);
  });

  it("returns null for a client without a token, and for an expired token", async () => {
    expect(await tokens().getForClient("nobody")).toBeNull();
    await tokens().createOrUpdate("short", { expires_in_seconds: 0.05 });
    await sleep(120);
    expect(await tokens().getForClient("short")).toBeNull();
  });

  it("deletes expired tokens only, and says how many", async () => {
    await tokens().createOrUpdate("old-1", { expires_in_seconds: 0.05 });
    await tokens().createOrUpdate("old-2", { expires_in_seconds: 0.05 });
    await tokens().createOrUpdate("fresh");
    await sleep(120);
    expect(await tokens().deleteExpired()).toBe(2);
    expect(await tokens().deleteExpired()).toBe(0);
    expect(await tokens().getForClient("fresh")).not.toBeNull();
    // An expired client can be issued a new token.
    expect((await tokens().createOrUpdate("old-1")).client).toBe("old-1");
  });

  it("refuses bad options", async () => {
    await expect(tokens().createOrUpdate("c", { expires_in_seconds: 0 })).rejects.toBeInstanceOf(InvalidError);
    await expect(tokens().createOrUpdate("c", { expires_in_seconds: -5 })).rejects.toBeInstanceOf(InvalidError);
    await expect(tokens().createOrUpdate("c", { other: 1 } as never)).rejects.toBeInstanceOf(InvalidError);
    await expect(tokens().createOrUpdate(42 as never)).rejects.toBeInstanceOf(InvalidError);
  });
});
