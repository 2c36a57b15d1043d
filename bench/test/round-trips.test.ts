import { freshConfig, selectedBackends } from "@prefect/db/testing";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { roundTripCounter, startCountingProxy } from "../src/round-trips.js";

/** A typed frontend message: type byte, length (itself included), body. */
function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, "latin1");
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

/** A startup-style packet (no type byte): length, then a code, then a body. */
function untyped(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(8);
  header.writeInt32BE(8 + body.length, 0);
  header.writeInt32BE(code, 4);
  return Buffer.concat([header, body]);
}

const SSL_REQUEST = 80877103;
const PROTOCOL_3 = 196608;

function count(stream: Buffer, chunkSize: number): number {
  let trips = 0;
  const feed = roundTripCounter(() => {
    trips += 1;
  });
  for (let i = 0; i < stream.length; i += chunkSize) feed(stream.subarray(i, i + chunkSize));
  return trips;
}

describe("counting round trips from the frontend's messages", () => {
  // An extended query (Parse, Bind, Describe, Execute, Sync), a simple Query, a password message
  // and another extended query whose Sync ends the stream.
  const stream = Buffer.concat([
    untyped(SSL_REQUEST),
    untyped(PROTOCOL_3, Buffer.from("user\0postgres\0database\0bench\0Q\0\0", "latin1")),
    message("p", Buffer.from("secret S inside the password\0", "latin1")),
    message("P", Buffer.from("\0SELECT 'S' AS q\0\0\0", "latin1")),
    message("B", Buffer.alloc(10)),
    message("D", Buffer.from("P\0", "latin1")),
    message("E", Buffer.alloc(5)),
    message("S"),
    message("Q", Buffer.from("BEGIN\0", "latin1")),
    message("P", Buffer.from("\0SELECT 1\0\0\0", "latin1")),
    message("B", Buffer.alloc(10)),
    message("E", Buffer.alloc(5)),
    message("S"),
  ]);

  it("counts each Sync and Query message once, however the stream is cut", () => {
    for (const size of [1, 2, 3, 5, 7, 64, stream.length]) expect(count(stream, size)).toBe(3);
  });

  it("counts nothing before the startup packet is complete", () => {
    expect(count(untyped(PROTOCOL_3, Buffer.from("user\0S\0\0", "latin1")).subarray(0, 10), 1)).toBe(0);
  });
});

for (const backend of selectedBackends().filter((b) => b === "postgres")) {
  describe(`the counting proxy in front of PostgreSQL [${backend}]`, () => {
    it("sees one round trip per query node-postgres makes, simple or with parameters", async () => {
      const { config, remove } = await freshConfig(backend);
      if (config.backend !== "postgres") throw new Error("expected a PostgreSQL database");
      const proxy = await startCountingProxy(config.url);
      const client = new pg.Client({ connectionString: proxy.url });
      try {
        await client.connect();
        const before = proxy.roundTrips();
        await client.query("SELECT 1");
        await client.query("SELECT $1::int AS n", [2]);
        await client.query({ name: "named", text: "SELECT $1::text AS t", values: ["x"] });
        await client.query({ name: "named", text: "SELECT $1::text AS t", values: ["y"] });
        await client.query("BEGIN");
        await client.query("COMMIT");
        expect(proxy.roundTrips() - before).toBe(6);
      } finally {
        await client.end();
        await proxy.close();
        await remove();
      }
    });
  });
}
