/**
 * Calls on the database made inside one of its transactions' callbacks: they must go through the
 * transaction (`tx`), never the database (`db`). Outside the transaction such a call does not see
 * its writes, and a write (or `db.transaction`) waits for the transaction it is itself part of,
 * which never ends: on SQLite for the one write lock, on PostgreSQL for the rows it locked.
 *
 * Knowing which transaction a call comes from takes an AsyncLocalStorage, whose promise hooks slow
 * down every promise of the process (on Node 20 the server answered 5-12% fewer requests on
 * SQLite with one in use). So the drivers only track it where PREFECT_DATABASE_CHECK_TRANSACTION_SCOPE
 * is 1 (the test suites set it), and there such a call fails with ScopeError at once.
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** Set to 1 to have calls on the database inside its transactions fail (development and tests). */
export const CHECK_TRANSACTION_SCOPE_VARIABLE = "PREFECT_DATABASE_CHECK_TRANSACTION_SCOPE";

export class ScopeError extends Error {}

export class TransactionScope<T extends { readonly finished: boolean }> {
  readonly #storage: AsyncLocalStorage<T> | null;

  constructor(check = process.env[CHECK_TRANSACTION_SCOPE_VARIABLE] === "1") {
    this.#storage = check ? new AsyncLocalStorage<T>() : null;
  }

  /** Runs `fn`, inside transaction `tx`. */
  run<R>(tx: T, fn: () => R): R {
    return this.#storage ? this.#storage.run(tx, fn) : fn();
  }

  /** Throws ScopeError for a call on the database from inside one of its open transactions (when checking). */
  check(): void {
    const tx = this.#storage?.getStore();
    if (tx && !tx.finished) {
      throw new ScopeError(
        "The database was called inside one of its transactions: use the transaction's repositories (`tx`), " +
          "or this call would not see the transaction's writes, and a write would wait for the transaction it is part of.",
      );
    }
  }
}
