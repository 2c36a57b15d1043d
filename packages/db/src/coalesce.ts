/**
 * Point reads asked for in the same turn of the event loop, sent as one statement. On PostgreSQL a
 * statement costs a write to the server's socket, a wake-up of its backend and a result description
 * parsed again for every execution, whatever its rows; the runs read by id by ten concurrent requests
 * cost one of each instead of ten. The statement goes out when the event loop has handled what was
 * ready (a `setImmediate`), so a read waits for no timer, and a lone read is sent as it would be alone.
 */
import type { Queryable, Row } from "./driver/types.js";
import { type Sql, sql } from "./sql.js";

export type LoadMany<K, V> = (keys: readonly K[]) => Promise<ReadonlyMap<K, V>>;

interface Waiter<V> {
  resolve(value: V | null): void;
  reject(error: unknown): void;
}

/** Batches of at most this many keys (a larger turn is cut into several statements). */
const MAX_KEYS = 100;

export class Coalescer<K, V> {
  #pending = new Map<K, Waiter<V>[]>();
  #scheduled = false;

  constructor(private readonly loadMany: LoadMany<K, V>) {}

  load(key: K): Promise<V | null> {
    return new Promise<V | null>((resolve, reject) => {
      const waiters = this.#pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.#pending.set(key, [{ resolve, reject }]);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const pending = this.#pending;
    this.#pending = new Map();
    const keys = [...pending.keys()];
    for (let start = 0; start < keys.length; start += MAX_KEYS) {
      const batch = keys.slice(start, start + MAX_KEYS);
      this.loadMany(batch).then(
        (found) => {
          for (const key of batch) for (const w of pending.get(key)!) w.resolve(found.get(key) ?? null);
        },
        (error: unknown) => {
          for (const key of batch) for (const w of pending.get(key)!) w.reject(error);
        },
      );
    }
  }
}

/**
 * `(id) => row or null` for `select` (a SELECT without WHERE whose rows carry the id as `id`) on
 * `column`: one statement per read, or, where the queryable coalesces reads (`Queryable.coalescesReads`,
 * asked at each read), one statement for every id read in the same turn.
 */
export function readById<T>(q: Queryable, select: Sql, column: Sql, decode: (row: Row) => T): (id: string) => Promise<T | null> {
  const together = new Coalescer<string, T>(async (ids) => {
    const rows = await q.query(sql`${select} WHERE ${q.dialect.inList(column, ids)}`);
    return new Map(rows.map((row) => [row.id as string, decode(row)]));
  });
  return async (id) => {
    if (q.coalescesReads) return together.load(id);
    const [row] = await q.query(sql`${select} WHERE ${column} = ${id}`);
    return row ? decode(row) : null;
  };
}
