/**
 * Concurrency leases in the database, shared by every server and every process on it. Each write is
 * one statement, so the repository works on the pool as in a transaction (where a lease change
 * commits, or rolls back, with the slot counts it goes with). Taking a lease out (`takeLease`,
 * `takeExpiredLeases`) is a `DELETE ... RETURNING`: of callers racing for one lease, exactly one gets
 * it, whichever server they run on.
 */
import { randomUUID } from "node:crypto";
import {
  type ConcurrencyLease,
  type ConcurrencyLeaseHolder,
  ConcurrencyLeaseMetadata,
  type ConcurrencyLeaseRow,
} from "../schemas/concurrency-leases.js";
import { type Sql, sql } from "../sql.js";
import { insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { addSeconds, now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface ConcurrencyLeaseRepository {
  createLease(resourceIds: readonly string[], ttlSeconds: number, metadata?: ConcurrencyLeaseMetadata | null): Promise<ConcurrencyLease>;
  readLease(leaseId: string): Promise<ConcurrencyLease | null>;
  /**
   * Extends the lease to `ttlSeconds` from now. False when it does not exist or has expired (an
   * expired lease is the repossessor's, and its holder must not be told it still holds slots).
   */
  renewLease(leaseId: string, ttlSeconds: number): Promise<boolean>;
  revokeLease(leaseId: string): Promise<void>;
  /** Removes the lease and returns it, or null when it is already gone (someone else took it). */
  takeLease(leaseId: string): Promise<ConcurrencyLease | null>;
  /**
   * Removes up to `limit` leases expired now and returns them. On PostgreSQL, leases another
   * transaction is taking are passed over, so concurrent repossessors share the work.
   */
  takeExpiredLeases(limit: number): Promise<ConcurrencyLease[]>;
  /** Sets the limits a lease holds slots on (a limit it held was deleted or reset). */
  narrowLease(leaseId: string, resourceIds: readonly string[]): Promise<void>;
  readActiveLeaseIds(limit?: number, offset?: number): Promise<string[]>;
  readExpiredLeaseIds(limit?: number): Promise<string[]>;
  /** The unexpired leases on `limitId` that name a holder. */
  listHoldersForLimit(limitId: string): Promise<{ leaseId: string; holder: ConcurrencyLeaseHolder }[]>;
  /** Every lease on `limitId`, expired or not. */
  listLeasesForLimit(limitId: string): Promise<ConcurrencyLease[]>;
  /** The unexpired leases the holder holds. */
  listLeasesHeldBy(holder: ConcurrencyLeaseHolder): Promise<ConcurrencyLease[]>;
}

const spec = tables.concurrency_lease;

function toLease(row: ConcurrencyLeaseRow): ConcurrencyLease {
  const holder = row.holder_type && row.holder_id ? ({ type: row.holder_type, id: row.holder_id } as ConcurrencyLeaseHolder) : null;
  return {
    id: row.id,
    resource_ids: row.resource_ids,
    expiration: row.expiration,
    created_at: row.created,
    metadata: row.slots === null ? null : { slots: row.slots, holder },
  };
}

export function concurrencyLeaseRepository({ q }: RepositoryContext): ConcurrencyLeaseRepository {
  const d = q.dialect;
  const decode = rowDecoder<ConcurrencyLeaseRow>(d, spec);
  const columns = selectList(spec, "concurrency_lease");
  const leases = async (query: Sql) => (await q.query(query)).map((row) => toLease(decode(row)));

  return {
    async createLease(resourceIds, ttlSeconds, metadata = null) {
      const parsed = metadata === null ? null : parseInput(ConcurrencyLeaseMetadata, metadata, "lease metadata");
      const created = now();
      const row = {
        id: randomUUID(),
        created,
        updated: created,
        resource_ids: [...resourceIds],
        expiration: addSeconds(created, ttlSeconds),
        slots: parsed?.slots ?? null,
        holder_type: parsed?.holder?.type ?? null,
        holder_id: parsed?.holder?.id ?? null,
      };
      return (await leases(insertSql(spec, row, sql` RETURNING ${columns}`)))[0]!;
    },
    async readLease(leaseId) {
      return (await leases(sql`SELECT ${columns} FROM concurrency_lease WHERE id = ${leaseId}`))[0] ?? null;
    },
    async renewLease(leaseId, ttlSeconds) {
      const at = now();
      const changed = await q.execute(
        sql`UPDATE concurrency_lease SET expiration = ${addSeconds(at, ttlSeconds)}, updated = ${at} WHERE id = ${leaseId} AND expiration >= ${at}`,
      );
      return changed > 0;
    },
    async revokeLease(leaseId) {
      await q.execute(sql`DELETE FROM concurrency_lease WHERE id = ${leaseId}`);
    },
    async takeLease(leaseId) {
      return (await leases(sql`DELETE FROM concurrency_lease WHERE id = ${leaseId} RETURNING ${columns}`))[0] ?? null;
    },
    async takeExpiredLeases(limit) {
      return leases(
        sql`DELETE FROM concurrency_lease WHERE id IN (
              SELECT l.id FROM concurrency_lease l WHERE l.expiration < ${now()} ORDER BY l.expiration LIMIT ${limit}${d.forUpdateSkipLocked("l")}
            ) RETURNING ${columns}`,
      );
    },
    async narrowLease(leaseId, resourceIds) {
      await q.execute(sql`UPDATE concurrency_lease SET resource_ids = ${sql.json([...resourceIds])}, updated = ${now()} WHERE id = ${leaseId}`);
    },
    async readActiveLeaseIds(limit = 100, offset = 0) {
      const rows = await q.query<{ id: string }>(
        sql`SELECT id FROM concurrency_lease WHERE expiration >= ${now()} ORDER BY created, id LIMIT ${limit} OFFSET ${offset}`,
      );
      return rows.map((row) => String(row.id));
    },
    async readExpiredLeaseIds(limit = 100) {
      const rows = await q.query<{ id: string }>(sql`SELECT id FROM concurrency_lease WHERE expiration < ${now()} ORDER BY expiration LIMIT ${limit}`);
      return rows.map((row) => String(row.id));
    },
    async listHoldersForLimit(limitId) {
      const found = await leases(
        sql`SELECT ${columns} FROM concurrency_lease
            WHERE holder_id IS NOT NULL AND expiration >= ${now()} AND ${d.jsonArrayContainsAny(sql.raw("resource_ids"), [limitId])}
            ORDER BY created, id`,
      );
      return found.flatMap((lease) => (lease.metadata?.holder ? [{ leaseId: lease.id, holder: lease.metadata.holder }] : []));
    },
    async listLeasesForLimit(limitId) {
      return leases(sql`SELECT ${columns} FROM concurrency_lease WHERE ${d.jsonArrayContainsAny(sql.raw("resource_ids"), [limitId])} ORDER BY created, id`);
    },
    async listLeasesHeldBy(holder) {
      return leases(
        sql`SELECT ${columns} FROM concurrency_lease
            WHERE holder_id = ${holder.id} AND holder_type = ${holder.type} AND expiration >= ${now()} ORDER BY created, id`,
      );
    },
  };
}
