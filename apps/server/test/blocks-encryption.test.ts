/**
 * Block data at rest: encrypted with Fernet as Prefect does, with the key from
 * PREFECT_SERVER_ENCRYPTION_KEY or generated once and kept in the database.
 */
import { type Database, openDatabase } from "@prefect/db";
import { expect, it } from "vitest";
import { decryptData, ENCRYPTION_KEY_CONFIGURATION, Fernet } from "../src/features/blocks/encryption.js";
import { type RunningServer, startServer } from "../src/server.js";
import { loadServerSettings } from "../src/settings.js";
import { PREFECT_BLOCKS, PYTHON_FERNET, registerBlock } from "./support/blocks.js";
import { describeApi, type ServerContext, type TestServer } from "./support/server.js";

async function storedKey(db: Database): Promise<string | undefined> {
  const value = (await db.configuration.get(ENCRYPTION_KEY_CONFIGURATION)) as { fernet_key?: string } | undefined;
  return value?.fernet_key;
}

/** The `data` column as stored, read through the database (not the API). */
async function storedData(server: TestServer, id: string): Promise<unknown> {
  return (await server.db.blocks.getDocument(id))!.data;
}

/** Another server over the same database, as after a restart or beside this one. */
async function anotherServer(db: Database, env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer({ ...loadServerSettings(env), host: "127.0.0.1", port: 0 }, { db, logger: false });
}

/** Runs `fn` with another server over the test's database (its own connection to it, but in memory). */
async function withAnotherServer<T>(t: ServerContext, fn: (other: RunningServer) => Promise<T>): Promise<T> {
  const db = t.backend === "sqlite-memory" ? t.server.db : await openDatabase(t.server.db.config);
  try {
    const other = await anotherServer(db);
    try {
      return await fn(other);
    } finally {
      await other.stop();
    }
  } finally {
    if (db !== t.server.db) await db.close();
  }
}

async function call(server: RunningServer, method: string, path: string, body?: unknown) {
  const response = await fetch(`${server.url}/api${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describeApi("block data at rest", (t) => {
  const secretBlock = () => registerBlock(t.server, PREFECT_BLOCKS.secretblockd!);
  const document = (block: { typeId: string; schemaId: string }, name: string, data: Record<string, unknown>) =>
    t.server.request("POST", "/block_documents/", { name, data, block_type_id: block.typeId, block_schema_id: block.schemaId });

  it("stores a Fernet token of the data, which the generated key in the configuration table decrypts", async () => {
    // Generated while the server started (see the next test), before any block was written.
    const generated = await storedKey(t.server.db);
    expect(generated).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    const block = await secretBlock();
    const data = { w: { secret: "w" }, x: "xx", y: "yy", z: "naïve ☃" };
    const { body: doc } = await document(block, "secret", data);

    const stored = await storedData(t.server, doc.id);
    expect(typeof stored).toBe("string");
    expect(stored as string).toMatch(/^gAAAAA/);
    // Nothing of the JSON shows: a token is base64url through and through (no braces, quotes or
    // spaces; a plaintext substring such as "xx" may turn up in random base64 by chance).
    expect(stored as string).toMatch(/^[A-Za-z0-9_-]+=*$/);
    const key = await storedKey(t.server.db);
    expect(key).toBe(generated);
    expect(decryptData(new Fernet(key!), stored as string)).toEqual(data);
    expect(new Fernet(key!).decrypt(stored as string).toString("utf8")).toBe('{"w": {"secret": "w"}, "x": "xx", "y": "yy", "z": "na\\u00efve \\u2603"}');
  });

  it("keeps references out of the encrypted data", async () => {
    const b = await registerBlock(t.server, PREFECT_BLOCKS.b!);
    const d = await registerBlock(t.server, PREFECT_BLOCKS.d!);
    const { body: inner } = await document(b, "inner", { x: 1 });
    const { body: outer } = await document(d, "outer", { b: { $ref: { block_document_id: inner.id } }, z: "z" });
    const key = new Fernet((await storedKey(t.server.db))!);
    expect(decryptData(key, (await storedData(t.server, outer.id)) as string)).toEqual({ z: "z" });
    await t.server.request("PATCH", `/block_documents/${outer.id}`, { data: { z: "changed" } });
    expect(decryptData(key, (await storedData(t.server, outer.id)) as string)).toEqual({ z: "changed" });
  });

  it("reads data that Prefect's server encrypted, with the key it stored", async () => {
    // A database Prefect's server used: its key is there before a server starts on it.
    await t.server.db.configuration.set(ENCRYPTION_KEY_CONFIGURATION, { fernet_key: PYTHON_FERNET.key });
    const block = await secretBlock();
    const written = await t.server.db.blocks.createDocument({
      name: "from-prefect",
      data: PYTHON_FERNET.token,
      block_type_id: block.typeId,
      block_schema_id: block.schemaId,
    });
    await withAnotherServer(t, async (other) => {
      const read = await call(other, "GET", `/block_documents/${written.id}?include_secrets=true`);
      expect(read.body.data).toEqual(PYTHON_FERNET.data);
      const created = await call(other, "POST", "/block_documents/", { name: "ours", data: { x: "1" }, block_type_id: block.typeId, block_schema_id: block.schemaId });
      expect(decryptData(new Fernet(PYTHON_FERNET.key), (await storedData(t.server, created.body.id as string)) as string)).toEqual({ x: "1" });
    });
  });

  it("reads the stored key while it starts: a server whose first use of it is inside a transaction answers", async () => {
    // A block another server (or this one before a restart) wrote, named by a pool's default job variable:
    // a new server's first need of the key is then the check of a deployment's job variables, inside the
    // transaction that creates the deployment.
    const block = await secretBlock();
    const { body: doc } = await document(block, "creds", { x: "one" });
    const pool = await t.server.request("POST", "/work_pools/", {
      name: "with-defaults",
      base_job_template: {
        job_configuration: { creds: "{{ creds }}" },
        variables: { properties: { creds: { type: "object", default: { $ref: { block_document_id: doc.id } } } } },
      },
    });
    expect(pool.status).toBe(201);
    const { body: flow } = await t.server.request("POST", "/flows/", { name: "uses-creds" });
    await withAnotherServer(t, async (other) => {
      const created = await call(other, "POST", "/deployments/", {
        name: "d",
        flow_id: flow.id,
        work_pool_name: "with-defaults",
        job_variables: { creds: { x: "two" } },
      });
      expect(created.status).toBe(201);
    });
  });

  it("generates the key once: another server and a restarted one use the stored key", async () => {
    const block = await secretBlock();
    const { body: first } = await document(block, "first", { x: "one" });
    const key = await storedKey(t.server.db);

    for (let restart = 0; restart < 2; restart++) {
      await withAnotherServer(t, async (other) => {
        const read = await call(other, "GET", `/block_documents/${first.id}?include_secrets=true`);
        expect(read.body.data).toEqual({ x: "one" });
        const created = await call(other, "POST", "/block_documents/", {
          name: `from-other-${restart}`,
          data: { x: "two" },
          block_type_id: block.typeId,
          block_schema_id: block.schemaId,
        });
        expect(created.status).toBe(201);
      });
    }
    expect(await storedKey(t.server.db)).toBe(key);
    const all = (await t.server.request("POST", "/block_documents/filter", { include_secrets: true })).body;
    expect(all.map((d: { name: string; data: unknown }) => [d.name, d.data])).toEqual([
      ["first", { x: "one" }],
      ["from-other-0", { x: "two" }],
      ["from-other-1", { x: "two" }],
    ]);
  });

  it("agrees on one key when two servers write blocks at the same time", async () => {
    const block = await secretBlock();
    await withAnotherServer(t, async (other) => {
      const body = (name: string) => ({ name, data: { x: name }, block_type_id: block.typeId, block_schema_id: block.schemaId });
      const [mine, theirs] = await Promise.all([document(block, "mine", { x: "mine" }), call(other, "POST", "/block_documents/", body("theirs"))]);
      expect([mine.status, theirs.status]).toEqual([201, 201]);
      const key = new Fernet((await storedKey(t.server.db))!);
      expect(decryptData(key, (await storedData(t.server, mine.body.id)) as string)).toEqual({ x: "mine" });
      expect(decryptData(key, (await storedData(t.server, theirs.body.id as string)) as string)).toEqual({ x: "theirs" });
      const read = await call(other, "GET", `/block_documents/${mine.body.id}?include_secrets=true`);
      expect(read.body.data).toEqual({ x: "mine" });
    });
  });

  it("refuses to start with a malformed PREFECT_SERVER_ENCRYPTION_KEY, naming it", async () => {
    await expect(anotherServer(t.server.db, { PREFECT_SERVER_ENCRYPTION_KEY: "not-a-key" })).rejects.toThrow("PREFECT_SERVER_ENCRYPTION_KEY");
  });
});

describeApi(
  "block data at rest with PREFECT_SERVER_ENCRYPTION_KEY",
  (t) => {
    it("encrypts with the configured key and stores none", async () => {
      const block = await registerBlock(t.server, PREFECT_BLOCKS.secretblockd!);
      const created = await t.server.request("POST", "/block_documents/", {
        name: "configured",
        data: { x: "secret" },
        block_type_id: block.typeId,
        block_schema_id: block.schemaId,
      });
      const stored = (await t.server.db.blocks.getDocument(created.body.id))!.data as string;
      expect(decryptData(new Fernet(PYTHON_FERNET.key), stored)).toEqual({ x: "secret" });
      expect(await storedKey(t.server.db)).toBeUndefined();
      expect((await t.server.request("GET", `/block_documents/${created.body.id}?include_secrets=true`)).body.data).toEqual({ x: "secret" });
    });

    it("reads a token made by Python with that key", async () => {
      const block = await registerBlock(t.server, PREFECT_BLOCKS.secretblockd!);
      const written = await t.server.db.blocks.createDocument({ name: "python", data: PYTHON_FERNET.token, block_type_id: block.typeId, block_schema_id: block.schemaId });
      const read = await t.server.request("GET", `/block_documents/${written.id}`);
      expect(read.body.data).toEqual({ ...PYTHON_FERNET.data });
    });
  },
  { PREFECT_SERVER_ENCRYPTION_KEY: PYTHON_FERNET.key },
);
