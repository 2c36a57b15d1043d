import { randomUUID } from "node:crypto";
import { AlreadyExistsError, InvalidError, NotFoundError } from "../errors.js";
import { checkId } from "../ids.js";
import { type FlowRunInput, FlowRunInputCreate, FlowRunInputFilter } from "../schemas/flow-run-inputs.js";
import { sql } from "../sql.js";
import { rowDecoder, selectList, tables } from "../tables.js";
import { now } from "../timestamps.js";
import { parseInput, type RepositoryContext } from "./context.js";

export interface FlowRunInputRepository {
  /** Throws AlreadyExistsError when the run has an input with this key, NotFoundError when the run does not exist. */
  create(input: FlowRunInputCreate): Promise<FlowRunInput>;
  /** The run's input with this key, or null. */
  get(flowRunId: string, key: string): Promise<FlowRunInput | null>;
  /** The run's inputs whose key starts with `prefix`, except `exclude_keys`, oldest first, at most `limit` (default 1). */
  filter(flowRunId: string, filter: FlowRunInputFilter): Promise<FlowRunInput[]>;
  /** Throws NotFoundError when the run has no input with this key. */
  delete(flowRunId: string, key: string): Promise<void>;
}

const spec = tables.flow_run_input;

export function flowRunInputRepository({ q }: RepositoryContext): FlowRunInputRepository {
  const d = q.dialect;
  const decode = rowDecoder<FlowRunInput>(d, spec);
  const select = sql`SELECT ${selectList(spec, "i")} FROM flow_run_input i`;
  const checkKey = (key: string) => {
    if (typeof key !== "string") throw new InvalidError("key must be a string", [{ path: ["key"], message: "Input should be a valid string" }]);
    return key;
  };

  return {
    async create(input) {
      const data = parseInput(FlowRunInputCreate, input, "flow run input");
      const ts = now();
      const row = { id: randomUUID(), created: ts, updated: ts, flow_run_id: data.flow_run_id, key: data.key, value: data.value, sender: data.sender ?? null };
      let inserted: number;
      try {
        // Inserted only when the run exists, so a missing run is told apart from other failures.
        inserted = await q.execute(
          sql`INSERT INTO flow_run_input ("id", "created", "updated", "flow_run_id", "key", "value", "sender")
              SELECT ${row.id}, ${ts}, ${ts}, r."id", ${row.key}, ${row.value}, ${row.sender} FROM flow_run r WHERE r."id" = ${row.flow_run_id}`,
        );
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new AlreadyExistsError("A flow run input with this key already exists.", "key", { cause: error });
        throw error;
      }
      if (inserted === 0) throw new NotFoundError(`Flow run ${data.flow_run_id} not found.`);
      return row;
    },
    async get(flowRunId, key) {
      const rows = await q.query(sql`${select} WHERE i."flow_run_id" = ${checkId(flowRunId, "flow run id")} AND i."key" = ${checkKey(key)}`);
      return rows[0] ? decode(rows[0]) : null;
    },
    async filter(flowRunId, filter) {
      const id = checkId(flowRunId, "flow run id");
      const f = parseInput(FlowRunInputFilter, filter, "flow run input filter");
      const rows = await q.query(
        sql`${select} WHERE i."flow_run_id" = ${id} AND ${d.startsWith(sql.raw('i."key"'), f.prefix)} AND ${d.notInList(sql.raw('i."key"'), f.exclude_keys)}
            ORDER BY i."created", i."id" LIMIT ${f.limit}`,
      );
      return rows.map(decode);
    },
    async delete(flowRunId, key) {
      const id = checkId(flowRunId, "flow run id");
      const deleted = await q.execute(sql`DELETE FROM flow_run_input WHERE "flow_run_id" = ${id} AND "key" = ${checkKey(key)}`);
      if (deleted === 0) throw new NotFoundError(`Flow run input ${JSON.stringify(key)} of flow run ${id} not found.`);
    },
  };
}
