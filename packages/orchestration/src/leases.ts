/**
 * Concurrency leases: which holder (a task run, a flow run, a deployment) occupies slots on which
 * concurrency limits. Prefect keeps them outside the database behind a `ConcurrencyLeaseStorage`
 * (`server/concurrency/lease_storage/`, default: process memory); the slot counts themselves live in
 * `concurrency_limit_v2.active_slots`.
 *
 * Orchestration records here the tag slots a task run takes when it starts RUNNING and finds them
 * again when it stops (Prefect's SecureTaskConcurrencySlots / ReleaseTaskConcurrencySlots). The
 * server's v1/v2 concurrency endpoints must use the same storage, since Prefect's release also frees
 * the slots a task run took through them.
 */
import { randomUUID } from "node:crypto";
import { addSeconds, now, type Timestamp } from "@prefect/db";

export interface ConcurrencyLeaseHolder {
  readonly type: "flow_run" | "task_run" | "deployment";
  readonly id: string;
}

export interface ConcurrencyLeaseMetadata {
  readonly slots: number;
  readonly holder?: ConcurrencyLeaseHolder | null;
}

export interface ConcurrencyLease {
  readonly id: string;
  readonly resource_ids: readonly string[];
  readonly expiration: Timestamp;
  readonly created_at: Timestamp;
  readonly metadata: ConcurrencyLeaseMetadata | null;
}

/**
 * Prefect's `ConcurrencyLeaseStorage` protocol, plus an atomic take (so a lease's slots are freed
 * once) and two helpers for putting a lease back and sweeping the leases of one limit.
 */
export interface LeaseStorage {
  createLease(resourceIds: readonly string[], ttlSeconds: number, metadata?: ConcurrencyLeaseMetadata | null): Promise<ConcurrencyLease>;
  readLease(leaseId: string): Promise<ConcurrencyLease | null>;
  /**
   * False when the lease does not exist or has expired (the protocol's documented contract: an
   * expired lease is the repossessor's, and its holder must not be told it still holds slots).
   */
  renewLease(leaseId: string, ttlSeconds: number): Promise<boolean>;
  revokeLease(leaseId: string): Promise<void>;
  /**
   * Removes the lease and returns it, or null when it is already gone: of callers racing to release
   * the same lease (its holder, the repossessor), exactly one gets it, and only that one frees its slots.
   */
  takeLease(leaseId: string): Promise<ConcurrencyLease | null>;
  /**
   * Stores the lease as given, under its id: puts back a lease taken by a release that then failed,
   * or narrows the limits of a lease.
   */
  saveLease(lease: ConcurrencyLease): Promise<void>;
  readActiveLeaseIds(limit?: number, offset?: number): Promise<string[]>;
  readExpiredLeaseIds(limit?: number): Promise<string[]>;
  /** The unexpired leases on `limitId` that name a holder. */
  listHoldersForLimit(limitId: string): Promise<{ leaseId: string; holder: ConcurrencyLeaseHolder }[]>;
  /** Every lease on `limitId`, expired or not. */
  listLeasesForLimit(limitId: string): Promise<ConcurrencyLease[]>;
}

/** Prefect's `V1_LEASE_TTL`: task runs hold tag slots for ~100 years (until they stop running). */
export const TASK_LEASE_TTL_SECONDS = 100 * 365 * 24 * 60 * 60;

/** Leases in this process's memory (Prefect's default `memory` lease storage). */
export class MemoryLeaseStorage implements LeaseStorage {
  readonly #leases = new Map<string, ConcurrencyLease>();

  async createLease(resourceIds: readonly string[], ttlSeconds: number, metadata: ConcurrencyLeaseMetadata | null = null): Promise<ConcurrencyLease> {
    const created = now();
    const lease: ConcurrencyLease = {
      id: randomUUID(),
      resource_ids: [...resourceIds],
      created_at: created,
      expiration: addSeconds(created, ttlSeconds),
      metadata,
    };
    this.#leases.set(lease.id, lease);
    return lease;
  }

  async readLease(leaseId: string): Promise<ConcurrencyLease | null> {
    return this.#leases.get(leaseId) ?? null;
  }

  async renewLease(leaseId: string, ttlSeconds: number): Promise<boolean> {
    const lease = this.#leases.get(leaseId);
    const at = now();
    if (!lease || lease.expiration < at) return false;
    this.#leases.set(leaseId, { ...lease, expiration: addSeconds(at, ttlSeconds) });
    return true;
  }

  async revokeLease(leaseId: string): Promise<void> {
    this.#leases.delete(leaseId);
  }

  async takeLease(leaseId: string): Promise<ConcurrencyLease | null> {
    const lease = this.#leases.get(leaseId);
    if (!lease) return null;
    this.#leases.delete(leaseId);
    return lease;
  }

  async saveLease(lease: ConcurrencyLease): Promise<void> {
    this.#leases.set(lease.id, { ...lease, resource_ids: [...lease.resource_ids] });
  }

  async readActiveLeaseIds(limit = 100, offset = 0): Promise<string[]> {
    const at = now();
    return [...this.#leases.values()]
      .filter((l) => l.expiration >= at)
      .slice(offset, offset + limit)
      .map((l) => l.id);
  }

  async readExpiredLeaseIds(limit = 100): Promise<string[]> {
    const at = now();
    return [...this.#leases.values()]
      .filter((l) => l.expiration < at)
      .slice(0, limit)
      .map((l) => l.id);
  }

  async listHoldersForLimit(limitId: string): Promise<{ leaseId: string; holder: ConcurrencyLeaseHolder }[]> {
    const at = now();
    const holders: { leaseId: string; holder: ConcurrencyLeaseHolder }[] = [];
    for (const lease of this.#leases.values()) {
      const holder = lease.metadata?.holder;
      if (holder && lease.expiration >= at && lease.resource_ids.includes(limitId)) holders.push({ leaseId: lease.id, holder });
    }
    return holders;
  }

  async listLeasesForLimit(limitId: string): Promise<ConcurrencyLease[]> {
    return [...this.#leases.values()].filter((lease) => lease.resource_ids.includes(limitId));
  }
}

/** The process-wide storage used when the caller passes none (as Prefect's module-level storage). */
export const defaultLeaseStorage: LeaseStorage = new MemoryLeaseStorage();
