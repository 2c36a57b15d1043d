import { randomBytes, randomUUID } from "node:crypto";
import { InvalidError } from "../errors.js";
import { type CsrfToken, CsrfTokenOptions } from "../schemas/csrf-tokens.js";
import { sql } from "../sql.js";
import { insertSql, rowDecoder, selectList, tables } from "../tables.js";
import { addSeconds, now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface CsrfTokenRepository {
  /** Issues a fresh token for the client, replacing its previous one (one row per client). */
  createOrUpdate(client: string, options?: CsrfTokenOptions): Promise<CsrfToken>;
  /** The client's token if it has not expired, else null. */
  getForClient(client: string): Promise<CsrfToken | null>;
  /** Deletes every expired token; returns how many. */
  deleteExpired(): Promise<number>;
}

const spec = tables.csrf_token;

export function csrfTokenRepository({ q }: RepositoryContext): CsrfTokenRepository {
  const decode = rowDecoder<CsrfToken>(q.dialect, spec);
  const checkClient = (client: string) => {
    if (typeof client !== "string") throw new InvalidError("client must be a string", [{ path: ["client"], message: "Input should be a valid string" }]);
    return client;
  };

  return {
    async createOrUpdate(client, options = {}) {
      checkClient(client);
      const { expires_in_seconds } = parseInput(CsrfTokenOptions, options, "CSRF token options");
      const ts = now();
      const row = { id: randomUUID(), created: ts, updated: ts, client, token: randomBytes(32).toString("hex"), expiration: addSeconds(ts, expires_in_seconds) };
      const rows = await q.query(
        insertSql(
          spec,
          row,
          sql` ON CONFLICT ("client") DO UPDATE SET "token" = excluded."token", "expiration" = excluded."expiration", "updated" = excluded."updated"
               RETURNING ${selectList(spec, "csrf_token")}`,
        ),
      );
      return decode(rows[0]!);
    },
    async getForClient(client) {
      const rows = await q.query(
        sql`SELECT ${selectList(spec, "t")} FROM csrf_token t WHERE t."client" = ${checkClient(client)} AND t."expiration" > ${now()}`,
      );
      return rows[0] ? decode(rows[0]) : null;
    },
    async deleteExpired() {
      return q.execute(sql`DELETE FROM csrf_token WHERE "expiration" < ${now()}`);
    },
  };
}
