/**
 * Counting PostgreSQL round trips without touching the server: a TCP proxy between the server and
 * PostgreSQL that reads the frontend messages going through it. A round trip is a wait: the client
 * sends work (a Sync ends an extended-protocol query, a Query message is a simple one) and waits for
 * the answer. Messages a client pipelines (sends before the answer to the previous ones came back)
 * share one round trip: a Sync or Query counts only when the server has answered since the last one
 * counted.
 */
import { createServer, type Server, type Socket, connect } from "node:net";

export interface CountingProxy {
  /** The URL to give the server instead of `target`. */
  readonly url: string;
  /** Round trips so far, over every connection. */
  roundTrips(): number;
  close(): Promise<void>;
}

export interface RoundTripCounter {
  /** The client's bytes, in chunks as they arrive (a message may span chunks). */
  fromClient(chunk: Buffer): void;
  /** The server sent something back. */
  answered(): void;
}

/**
 * Reads one connection's client stream: the startup packet (no type byte), then typed messages;
 * calls `onRoundTrip` for each Sync or Query that follows an answer from the server.
 */
export function roundTripCounter(onRoundTrip: () => void): RoundTripCounter {
  let buffered: Buffer = Buffer.alloc(0);
  let started = false;
  let answered = true;
  return {
    answered() {
      answered = true;
    },
    fromClient(chunk) {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (;;) {
        if (!started) {
          if (buffered.length < 8) return;
          const length = buffered.readInt32BE(0);
          if (buffered.length < length) return;
          const code = buffered.readInt32BE(4);
          // SSLRequest / GSSENCRequest come before the real startup packet.
          if (code !== 80877103 && code !== 80877104) started = true;
          buffered = buffered.subarray(length);
          continue;
        }
        if (buffered.length < 5) return;
        const length = buffered.readInt32BE(1);
        if (buffered.length < 1 + length) return;
        const type = String.fromCharCode(buffered[0]!);
        if ((type === "S" || type === "Q") && answered) {
          answered = false;
          onRoundTrip();
        }
        buffered = buffered.subarray(1 + length);
      }
    },
  };
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const url = new URL(target);
  const host = url.hostname || "127.0.0.1";
  const port = Number(url.port || 5432);
  let count = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, host);
    sockets.add(client);
    sockets.add(upstream);
    const counter = roundTripCounter(() => {
      count += 1;
    });
    client.on("data", (chunk: Buffer) => {
      counter.fromClient(chunk);
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      counter.answered();
      client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("the proxy has no port");
  const proxied = new URL(target);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(address.port);
  return {
    url: proxied.toString(),
    roundTrips: () => count,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
