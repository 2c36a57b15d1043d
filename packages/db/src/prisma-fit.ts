/**
 * Prisma's generated clients earn their place here, at compile time: the SQL layer's tables
 * (tables.ts) and the rows the repositories return must fit the models of both generated clients
 * (prisma/sqlite and prisma/postgres), or `pnpm typecheck` fails and says what does not fit.
 *
 * - Every table spec names exactly the model's columns, each with a kind that matches the Prisma
 *   type (uuid and text: String, int: Int, float: Float, bool: Boolean, json: Json, timestamp:
 *   DateTime, enum: one of the schema's enums).
 * - Every field of a returned row that is a column has the column's type as our SQL decodes it
 *   (DateTime becomes a Timestamp string), nullable exactly when the column is. JSON fields have
 *   narrower types than Prisma's JsonValue; of them only nullability is compared.
 *
 * Nothing here runs: the module holds types only.
 */
import type { Prisma as PostgresPrisma } from "./generated/postgres/client.js";
import type { Prisma as SqlitePrisma } from "./generated/sqlite/client.js";
import type { Log } from "./repositories/logs.js";
import type { Artifact, ArtifactCollection } from "./schemas/artifacts.js";
import type { Automation, AutomationActionQueueEntry, AutomationBucket, AutomationEventFollower, AutomationRelatedResource, CompositeTriggerChildFiring } from "./schemas/automations.js";
import type { BlockDocument, BlockDocumentReference, BlockSchema, BlockSchemaReference, BlockType } from "./schemas/blocks.js";
import type { ConcurrencyLeaseRow } from "./schemas/concurrency-leases.js";
import type { ConcurrencyLimitV2 } from "./schemas/concurrency-limits.js";
import type { CsrfToken } from "./schemas/csrf-tokens.js";
import type { Deployment, DeploymentConcurrencyLimit, DeploymentSchedule, DeploymentVersion } from "./schemas/deployments.js";
import type { StoredEvent } from "./schemas/events.js";
import type { FlowRunInput } from "./schemas/flow-run-inputs.js";
import type { Flow, FlowRun, FlowRunState, TaskRun, TaskRunState, TaskRunStateCacheEntry } from "./schemas/runs.js";
import type { SavedSearch } from "./schemas/saved-searches.js";
import type { Variable } from "./schemas/variables.js";
import type { SlotHolder, Worker, WorkPool, WorkQueue } from "./schemas/work-pools.js";
import type { TableName, Tables } from "./tables.js";
import type { Timestamp } from "./timestamps.js";

/** The models of one generated client: fields (with their Prisma types) and scalars (with their TS types). */
type ModelsOf<TypeMap extends { model: Record<string, { fields: object; payload: { scalars: object }; operations: { createMany: { args: { data: unknown } } } }> }> =
  TypeMap["model"];
type Clients = {
  sqlite: ModelsOf<SqlitePrisma.TypeMap>;
  postgres: ModelsOf<PostgresPrisma.TypeMap>;
};
type Provider = keyof Clients;

type ModelOf<T extends TableName> = Tables[T]["model"];
type Columns<T extends TableName> = Tables[T]["columns"];
type Fields<P extends Provider, T extends TableName> = ModelOf<T> extends keyof Clients[P] ? Clients[P][ModelOf<T>]["fields"] : never;
type Scalars<P extends Provider, T extends TableName> = ModelOf<T> extends keyof Clients[P] ? Clients[P][ModelOf<T>]["payload"]["scalars"] : never;
/** A row as the client's createMany takes it: the one place where a nullable JSON column differs from a required one. */
type CreateInput<P extends Provider, T extends TableName> = ModelOf<T> extends keyof Clients[P]
  ? Exclude<Clients[P][ModelOf<T>]["operations"]["createMany"]["args"]["data"], readonly unknown[]>
  : never;
/** Prisma's marker for SQL NULL in a JSON column, which only nullable JSON columns accept. */
type DbNull = {
  sqlite: Exclude<SqlitePrisma.NullableJsonNullValueInput, SqlitePrisma.JsonNullValueInput>;
  postgres: Exclude<PostgresPrisma.NullableJsonNullValueInput, PostgresPrisma.JsonNullValueInput>;
};
type PrismaType<P extends Provider, T extends TableName, C> = C extends keyof Fields<P, T> ? (Fields<P, T>[C] extends { typeName: infer N } ? N : never) : never;

type BuiltIn = "String" | "Int" | "Float" | "Boolean" | "Json" | "DateTime" | "Decimal" | "BigInt" | "Bytes";
type KindFits<K, N> = K extends "uuid" | "text" | "indexed_text"
  ? N extends "String" ? true : false
  : K extends "int"
    ? N extends "Int" | "BigInt" ? true : false
    : K extends "float"
      ? N extends "Float" ? true : false
      : K extends "bool"
        ? N extends "Boolean" ? true : false
        : K extends "json"
          ? N extends "Json" ? true : false
          : K extends "timestamp"
            ? N extends "DateTime" ? true : false
            : N extends BuiltIn ? false : true;

type TypeNameOf<F> = F extends { typeName: infer N } ? N : never;

/** What is wrong with the spec of `table` (columns `Cols`) against a model with fields `Flds`, as messages; never when it fits. */
type SpecProblems<P extends string, Table extends string, Model extends string, Cols, Flds> =
  | {
      [C in keyof Cols & string]: C extends keyof Flds
        ? KindFits<Cols[C], TypeNameOf<Flds[C]>> extends true
          ? never
          : `${P}: ${Table}.${C} is ${Cols[C] & string} in tables.ts but ${TypeNameOf<Flds[C]> & string} in the Prisma schema`
        : `${P}: ${Table}.${C} is in tables.ts but not in the Prisma model ${Model}`;
    }[keyof Cols & string]
  | { [C in keyof Flds & string]: C extends keyof Cols ? never : `${P}: ${Table}.${C} is in the Prisma model ${Model} but not in tables.ts` }[keyof Flds & string];

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Nullable<X> = null extends X ? true : false;
type IsUnknown<X> = unknown extends X ? true : false;

/** A column's type as our SQL decodes it: DateTime as a Timestamp string, the rest as Prisma types it. */
type Decoded<X> = X extends Date ? Timestamp : X;

/** Whether column `C` may be NULL (Prisma's JsonValue includes JSON's null, so JSON columns are asked differently). */
type ColumnNullable<P extends Provider, T extends TableName, C> = PrismaType<P, T, C> extends "Json"
  ? C extends keyof CreateInput<P, T>
    ? [DbNull[P]] extends [CreateInput<P, T>[C]]
      ? true
      : false
    : false
  : C extends keyof Scalars<P, T>
    ? Nullable<Scalars<P, T>[C]>
    : false;

/** Whether a row field of type `R` fits column `C` of table `T` on provider `P`. */
type FieldFits<P extends Provider, T extends TableName, C extends keyof Scalars<P, T>, R> =
  PrismaType<P, T, C> extends "Json"
    ? IsUnknown<R> extends true
      ? true
      : Same<Nullable<R>, ColumnNullable<P, T, C>>
    : Same<R, Decoded<Scalars<P, T>[C]>>;

/** What is wrong with row type `Row` (named `Name`) against table `T` on provider `P`; never when it fits. */
type RowProblems<Name extends string, Row, P extends Provider, T extends TableName> = {
  [C in keyof Row & keyof Scalars<P, T> & string]: FieldFits<P, T, C, Row[C]> extends true
    ? never
    : `${P}: ${Name}.${C} does not fit ${T}.${C} (${PrismaType<P, T, C> & string}${ColumnNullable<P, T, C> extends true ? ", nullable" : ", not null"})`;
}[keyof Row & keyof Scalars<P, T> & string];

/** The rows the repositories return, each with the table it is read from. */
type ReturnedRows = {
  Flow: [Flow, "flow"];
  FlowRun: [FlowRun, "flow_run"];
  FlowRunState: [FlowRunState, "flow_run_state"];
  TaskRun: [TaskRun, "task_run"];
  TaskRunState: [TaskRunState, "task_run_state"];
  TaskRunStateCacheEntry: [TaskRunStateCacheEntry, "task_run_state_cache"];
  Log: [Log, "log"];
  StoredEvent: [StoredEvent, "events"];
  BlockType: [BlockType, "block_type"];
  BlockSchema: [BlockSchema, "block_schema"];
  BlockSchemaReference: [BlockSchemaReference, "block_schema_reference"];
  BlockDocument: [BlockDocument, "block_document"];
  BlockDocumentReference: [BlockDocumentReference, "block_document_reference"];
  Deployment: [Deployment, "deployment"];
  DeploymentSchedule: [DeploymentSchedule, "deployment_schedule"];
  DeploymentVersion: [DeploymentVersion, "deployment_version"];
  DeploymentConcurrencyLimit: [DeploymentConcurrencyLimit, "concurrency_limit_v2"];
  WorkPool: [WorkPool, "work_pool"];
  WorkQueue: [WorkQueue, "work_queue"];
  Worker: [Worker, "worker"];
  SlotHolder: [SlotHolder, "flow_run"];
  ConcurrencyLimitV2: [ConcurrencyLimitV2, "concurrency_limit_v2"];
  ConcurrencyLeaseRow: [ConcurrencyLeaseRow, "concurrency_lease"];
  Variable: [Variable, "variable"];
  Artifact: [Artifact, "artifact"];
  ArtifactCollection: [ArtifactCollection, "artifact_collection"];
  SavedSearch: [SavedSearch, "saved_search"];
  FlowRunInput: [FlowRunInput, "flow_run_input"];
  CsrfToken: [CsrfToken, "csrf_token"];
  Automation: [Automation, "automation"];
  AutomationBucket: [AutomationBucket, "automation_bucket"];
  AutomationRelatedResource: [AutomationRelatedResource, "automation_related_resource"];
  CompositeTriggerChildFiring: [CompositeTriggerChildFiring, "composite_trigger_child_firing"];
  AutomationEventFollower: [AutomationEventFollower, "automation_event_follower"];
  AutomationActionQueue: [AutomationActionQueueEntry, "automation_action_queue"];
};

/** Every table has a model in both clients, and every model of both clients has a table. */
type ModelProblems<P extends Provider> =
  | { [T in TableName]: ModelOf<T> extends keyof Clients[P] ? never : `${P}: the Prisma schema has no model ${ModelOf<T>} (table ${T})` }[TableName]
  | { [M in keyof Clients[P] & string]: M extends ModelOf<TableName> ? never : `${P}: the Prisma model ${M} has no table in tables.ts` }[keyof Clients[P] & string];

type Problems = {
  [P in Provider]:
    | ModelProblems<P>
    | { [T in TableName]: SpecProblems<P, T, ModelOf<T>, Columns<T>, Fields<P, T>> }[TableName]
    | { [R in keyof ReturnedRows & string]: RowProblems<R, ReturnedRows[R][0], P, ReturnedRows[R][1]> }[keyof ReturnedRows & string];
}[Provider];

/** Fails to compile, listing every problem, unless there is none. */
type Fits<T extends never> = T;
export type PrismaFit = Fits<Problems>;
