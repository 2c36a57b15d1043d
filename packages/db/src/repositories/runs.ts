/**
 * One implementation of the run repositories: flow runs and task runs are stored alike (a run table,
 * a state table whose rows point at their run, the run's pointer to its current state), so everything
 * but what a `RunKind` says (columns, upsert key, filters, sorts, joined columns) is shared.
 */
import type { z } from "zod";
import type { Dialect } from "../dialect.js";
import { InvalidError, NotFoundError } from "../errors.js";
import { page, where } from "../filters.js";
import { readById } from "../coalesce.js";
import { checkId, uuid7 } from "../ids.js";
import { randomRunName } from "../names.js";
import type { Created, Page } from "../schemas/common.js";
import type { RunCriteria } from "../schemas/filters.js";
import { RunBookkeeping, type State, StateCreate } from "../schemas/runs.js";
import { type Sql, sql } from "../sql.js";
import { assignments } from "../tables.js";
import { now, type Timestamp } from "../timestamps.js";
import type { RunTables } from "../writes.js";
import { parseInput, type RepositoryContext } from "./context.js";
import {
  buildStateRow,
  type HistoryInterval,
  type HistoryOptions,
  orderBy,
  type ParsedState,
  pointerTo,
  type RunJoin,
  type RunReader,
  runHistory,
  runReader,
  type StateHistory,
  stateFromRow,
  stateHistory,
} from "./run-states.js";

export type SortTerms = readonly (readonly [expression: string, direction: "ASC" | "DESC"])[];

export interface RunReadOptions<Sort extends string> extends RunCriteria, Page {
  readonly sort?: Sort | undefined;
}

/** What flow runs and task runs both offer; FlowRunRepository and TaskRunRepository add their own. */
export interface RunRepository<Run, S extends State, Create, Update, ReadOptions extends RunReadOptions<string>> extends StateHistory<S> {
  /**
   * Inserts a run, with its first state when one is given (the run's pointer set in the same atomic
   * step). When its upsert key is taken (a flow run's flow and idempotency key; a task run's flow run,
   * task key and dynamic key), returns the run that has it instead, as Prefect does.
   */
  create(input: Create): Promise<Created<Run>>;
  /**
   * As `create`, with the first state decided from the run about to be inserted: `decide` gets the new
   * run (no state, nothing written yet) and returns its first state and the bookkeeping to store with
   * it (orchestration's rules; null for none), which are inserted with the run in one step. When the upsert key is
   * taken, nothing is inserted and the run holding it comes back with `created: false` (whatever
   * `decide` wrote meanwhile stays: roll back the transaction to undo it). `lastWrite`: the caller's
   * transaction writes nothing after the insert and need not undo it (on PostgreSQL, an insert that
   * nothing preceded then commits by itself; see `Queryable.queryFinal`).
   */
  createWithFirstState(input: Create, decide: (run: Run) => Promise<FirstState | null>, options?: { readonly lastWrite?: boolean }): Promise<Created<Run>>;
  get(id: string): Promise<Run | null>;
  /**
   * Reads the run, locking it against concurrent state changes until the surrounding transaction
   * ends (a row lock on PostgreSQL; SQLite's write transactions are exclusive already).
   */
  getForUpdate(id: string): Promise<Run | null>;
  read(options?: ReadOptions): Promise<Run[]>;
  count(criteria?: RunCriteria): Promise<number>;
  /** Throws NotFoundError for an unknown id. */
  update(id: string, patch: Update): Promise<Run>;
  /**
   * As `update`, in one statement, without reading the run back: for a caller that holds the run's
   * lock and knows what it wrote.
   */
  patch(id: string, patch: Update): Promise<void>;
  /** Runs counted per interval of expected start time and per state (Prefect's run history). */
  history(criteria: RunCriteria, options: HistoryOptions): Promise<HistoryInterval[]>;
  /** Deletes the run with its states (and a flow run's task runs). Throws NotFoundError for an unknown id. */
  delete(id: string): Promise<void>;
}

/** A new run's first state and the run fields written with it. */
export interface FirstState {
  readonly state: StateCreate;
  readonly bookkeeping: RunBookkeeping;
}

/** The input every run's create takes (runCreateCommon in schemas/runs.ts), as validated. */
interface RunCreateCommon {
  id?: string | undefined;
  name?: string | undefined;
  empirical_policy: Record<string, unknown>;
  tags: string[];
  labels?: unknown;
  run_count?: number | undefined;
  expected_start_time?: Timestamp | null | undefined;
  next_scheduled_start_time?: Timestamp | null | undefined;
  start_time?: Timestamp | null | undefined;
  end_time?: Timestamp | null | undefined;
  total_run_time?: number | undefined;
  state?: ParsedState | null | undefined;
}

export interface RunKind<CreateSchema extends z.ZodType<RunCreateCommon>, UpdateSchema extends z.ZodType, Sort extends string> {
  readonly tables: RunTables;
  /** What messages call a run: "Flow run", "Task run". */
  readonly label: string;
  readonly createSchema: CreateSchema;
  readonly updateSchema: UpdateSchema;
  readonly sorts: Readonly<Record<Sort, SortTerms>>;
  readonly defaultSort: Sort;
  /** The run's conditions for `criteria`, on the run table aliased `alias`. */
  criteriaSql(d: Dialect, criteria: RunCriteria, alias: string): Sql;
  /** The columns of a new run that only this kind has, from its validated input. */
  ownColumns(data: z.output<CreateSchema>): Record<string, unknown>;
  /** Read with every run beyond its own columns and state. */
  readonly join?: RunJoin;
}

type ReaderKind = Pick<RunKind<z.ZodType<RunCreateCommon>, z.ZodType, string>, "tables" | "join">;
const readers = new WeakMap<ReaderKind, WeakMap<Dialect, RunReader<unknown>>>();

/** Reads runs of `kind` with their current state (and joined columns); built once per kind and dialect. */
export function kindReader<Run>(d: Dialect, kind: ReaderKind): RunReader<Run> {
  let byDialect = readers.get(kind);
  if (!byDialect) {
    byDialect = new WeakMap();
    readers.set(kind, byDialect);
  }
  let reader = byDialect.get(d);
  if (!reader) {
    reader = runReader<unknown>(d, kind.tables, kind.join);
    byDialect.set(d, reader);
  }
  return reader as RunReader<Run>;
}

/** The query `read` sends: runs of `kind` matching `options`, sorted and paged. */
export function runReadSql<Sort extends string>(d: Dialect, kind: RunKind<z.ZodType<RunCreateCommon>, z.ZodType, Sort>, options: RunReadOptions<Sort>): Sql {
  const reader = kindReader(d, kind);
  return sql`${reader.select}${where(kind.criteriaSql(d, options, "r"))} ORDER BY ${orderBy(kind.sorts[options.sort ?? kind.defaultSort])}${page(
    d,
    options.limit,
    options.offset,
  )}`;
}

export function runRepository<Run, S extends State, CreateSchema extends z.ZodType<RunCreateCommon>, UpdateSchema extends z.ZodType, Sort extends string>(
  context: RepositoryContext,
  kind: RunKind<CreateSchema, UpdateSchema, Sort>,
): RunRepository<Run, S, z.input<CreateSchema>, z.input<UpdateSchema>, RunReadOptions<Sort>> {
  const { q } = context;
  const { writes } = context.backend;
  const t = kind.tables;
  const noun = kind.label.toLowerCase();
  const table = sql.ident(t.run.name);
  const reader = kindReader<Run>(q.dialect, kind);
  const states = stateHistory<S>(context, t, kind.label);

  const getWhere = async (condition: Sql) => {
    const rows = await q.query(sql`${reader.select} WHERE ${condition}`);
    return rows[0] ? reader.decode(rows[0]) : null;
  };
  const byId = readById(q, reader.select, sql`r.id`, reader.decode);
  /** Writes a validated patch of the run with id `id` (checked); throws NotFoundError for an unknown one. */
  const writePatch = async (id: string, patch: z.input<UpdateSchema>) => {
    const data = parseInput(kind.updateSchema, patch, `${noun} update`) as Record<string, unknown>;
    const changed = await q.execute(sql`UPDATE ${table} SET ${assignments(t.run, { ...data, updated: now() })} WHERE id = ${id}`);
    if (changed === 0) throw new NotFoundError(`${kind.label} ${id} not found.`);
  };
  const criteriaSql = (criteria: RunCriteria) => kind.criteriaSql(q.dialect, criteria, "r");

  /** The row of a new run from its validated input, without a state. */
  const newRun = (data: z.output<CreateSchema> & RunCreateCommon): Record<string, unknown> => {
    const ts = now();
    return {
      id: data.id ?? uuid7(),
      created: ts,
      updated: ts,
      name: data.name ?? randomRunName(),
      state_type: null,
      state_name: null,
      state_timestamp: null,
      state_id: null,
      run_count: data.run_count ?? 0,
      expected_start_time: data.expected_start_time ?? null,
      next_scheduled_start_time: data.next_scheduled_start_time ?? null,
      start_time: data.start_time ?? null,
      end_time: data.end_time ?? null,
      total_run_time: data.total_run_time ?? 0,
      empirical_policy: data.empirical_policy,
      tags: data.tags,
      labels: data.labels ?? null,
      ...kind.ownColumns(data),
    };
  };

  /** Inserts `run` with `stateRow` as its current state; the run holding its upsert key when taken. */
  const insert = async (run: Record<string, unknown>, stateRow: ReturnType<typeof buildStateRow> | null, final = false): Promise<Created<Run>> => {
    const row = stateRow ? { ...run, ...pointerTo(stateRow) } : run;
    if (await writes.insertRun(q, t, row, stateRow, final)) {
      const readBack = kind.join?.readBack(row) ? await getWhere(sql`r.id = ${row.id}`) : null;
      if (readBack) return { row: readBack, created: true };
      const created: Record<string, unknown> = { ...row };
      kind.join?.decode({}, created);
      created.state = stateRow ? stateFromRow(stateRow) : null;
      return { row: created as Run, created: true };
    }
    const existing = await getWhere(sql.and(t.upsertKey.map((column) => sql`r.${sql.ident(column)} = ${row[column] ?? null}`)));
    if (!existing) throw new InvalidError(`${kind.label} ${row.id} could not be created; try again.`);
    return { row: existing, created: false };
  };

  return {
    ...states,

    async create(input) {
      const data = parseInput(kind.createSchema, input, noun) as z.output<CreateSchema> & RunCreateCommon;
      const run = newRun(data);
      return insert(run, data.state ? buildStateRow(t, run.id as string, data.state) : null);
    },

    async createWithFirstState(input, decide, options = {}) {
      const data = parseInput(kind.createSchema, input, noun) as z.output<CreateSchema> & RunCreateCommon;
      const run = newRun(data);
      const draft: Record<string, unknown> = { ...run };
      kind.join?.decode({}, draft);
      draft.state = null;
      const first = await decide(draft as Run);
      const final = options.lastWrite === true;
      if (!first) return insert(run, null, final);
      const stateRow = buildStateRow(t, run.id as string, parseInput(StateCreate, first.state, "state"));
      return insert({ ...run, ...parseInput(RunBookkeeping, first.bookkeeping, "run bookkeeping") }, stateRow, final);
    },

    get: async (id) => byId(checkId(id, `${noun} id`)),

    async getForUpdate(id) {
      id = checkId(id, `${noun} id`);
      const lock = q.dialect.forUpdate("r");
      if (lock.isEmpty) return getWhere(sql`r.id = ${id}`);
      // One statement locks and reads the run. When it had to wait for the lock, PostgreSQL re-reads the
      // run as the other writer left it but keeps the joined rows of its first look: such a read is told
      // by a state that is not the run's, and made again now that the lock is held.
      const [row] = await q.query(sql`${reader.select} WHERE r.id = ${id}${lock}`);
      if (row && reader.consistent(row)) return reader.decode(row);
      if (!row && (await q.query(sql`SELECT r.id FROM ${table} r WHERE r.id = ${id}${lock}`)).length === 0) return null;
      return getWhere(sql`r.id = ${id}`);
    },

    async read(options = {}) {
      const rows = await q.query(runReadSql(q.dialect, kind, options));
      return rows.map(reader.decode);
    },

    async count(criteria = {}) {
      const rows = await q.query<{ n: number }>(sql`SELECT count(*) AS n FROM ${table} r${where(criteriaSql(criteria))}`);
      return Number(rows[0]?.n ?? 0);
    },

    async update(id, patch) {
      id = checkId(id, `${noun} id`);
      await writePatch(id, patch);
      const run = await getWhere(sql`r.id = ${id}`);
      if (!run) throw new NotFoundError(`${kind.label} ${id} not found.`);
      return run;
    },

    async patch(id, patch) {
      await writePatch(checkId(id, `${noun} id`), patch);
    },

    history: (criteria, options) => runHistory(q, t.run.name, criteriaSql(criteria), options),

    async delete(id) {
      id = checkId(id, `${noun} id`);
      const deleted = await q.execute(sql`DELETE FROM ${table} WHERE id = ${id}`);
      if (deleted === 0) throw new NotFoundError(`${kind.label} ${id} not found.`);
    },
  };
}
