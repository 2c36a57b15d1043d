/**
 * Prefect's automation models (`server/events/schemas/automations.py`, `server/events/actions.py`)
 * as a validator that answers the way pydantic does: each problem with its `loc`, `msg`, `type`,
 * `input` and `ctx`. Triggers and actions are plain unions in Prefect, so a value that fits no member
 * is reported against every member, each under pydantic's tag for it. What passes is normalized to
 * Prefect's stored shape: every field present, in Prefect's order, durations in seconds.
 *
 * Checking templates (notification subjects and bodies, webhook payloads, run-deployment parameters)
 * needs the template engine, so validation is asynchronous.
 */
import { randomUUID } from "node:crypto";
import { parameterProblems } from "../../prefect/hydration.js";
import { isRecord } from "../../prefect/json.js";
import { templateProblem } from "../../prefect/templates.js";

type Loc = (string | number)[];
type Json = Record<string, unknown>;

/** One problem, as pydantic reports it. */
export interface Problem {
  type: string;
  loc: Loc;
  msg: string;
  input?: unknown;
  ctx?: Record<string, unknown>;
}

class Problems {
  readonly list: Problem[] = [];
  add(type: string, loc: Loc, msg: string, input: unknown, ctx?: Record<string, unknown>): undefined {
    this.list.push({ type, loc, msg, input, ...(ctx ? { ctx } : {}) });
    return undefined;
  }
  valueError(loc: Loc, message: string, input: unknown): undefined {
    return this.add("value_error", loc, `Value error, ${message}`, input, { error: message });
  }
  get ok(): boolean {
    return this.list.length === 0;
  }
}

const MISSING = Symbol("missing");
const field = (data: Json, key: string): unknown => (Object.hasOwn(data, key) ? data[key] : MISSING);

/** "'a' or 'b'", "'a', 'b' or 'c'": pydantic's list of expected literals. */
function expected(values: readonly string[]): string {
  const quoted = values.map((v) => `'${v}'`);
  return quoted.length === 1 ? quoted[0]! : `${quoted.slice(0, -1).join(", ")} or ${quoted[quoted.length - 1]}`;
}

function literal<T extends string>(p: Problems, loc: Loc, value: unknown, values: readonly T[], type = "literal_error"): T | undefined {
  if (typeof value === "string" && (values as readonly string[]).includes(value)) return value as T;
  const list = expected(values);
  return p.add(type, loc, `Input should be ${list}`, value, { expected: list });
}

function str(p: Problems, loc: Loc, value: unknown): string | undefined {
  if (typeof value === "string") return value;
  return p.add("string_type", loc, "Input should be a valid string", value);
}

function bool(p: Problems, loc: Loc, value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (value === 0 || value === 1) return value === 1;
  if (typeof value === "string") {
    const v = value.toLowerCase();
    if (["true", "yes", "on", "1", "t", "y"].includes(v)) return true;
    if (["false", "no", "off", "0", "f", "n"].includes(v)) return false;
    return p.add("bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", value);
  }
  return p.add("bool_type", loc, "Input should be a valid boolean", value);
}

function int(p: Problems, loc: Loc, value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) {
    if (Number.isInteger(value)) return value;
    return p.add("int_from_float", loc, "Input should be a valid integer, got a number with a fractional part", value);
  }
  if (typeof value === "string" && /^\s*[-+]?\d+\s*$/.test(value)) return Number(value);
  if (typeof value === "string") return p.add("int_parsing", loc, "Input should be a valid integer, unable to parse string as an integer", value);
  return p.add("int_type", loc, "Input should be a valid integer", value);
}

const UUID_TEXT = /^(?:urn:uuid:)?\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})\}?$/i;

function uuid(p: Problems, loc: Loc, value: unknown): string | undefined {
  if (typeof value !== "string") return p.add("uuid_type", loc, "UUID input should be a string, bytes or UUID object", value);
  const m = UUID_TEXT.exec(value.trim());
  if (!m) return p.add("uuid_parsing", loc, "Input should be a valid UUID, invalid character or length", value, { error: "invalid character or length" });
  return m.slice(1).join("-").toLowerCase();
}

function dict(p: Problems, loc: Loc, value: unknown): Json | undefined {
  if (isRecord(value)) return value;
  return p.add("dict_type", loc, "Input should be a valid dictionary", value);
}

const ISO_DURATION = /^([-+])?P(?:(\d+(?:[.,]\d+)?)Y)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)W)?(?:(\d+(?:[.,]\d+)?)D)?(?:T(?:(\d+(?:[.,]\d+)?)H)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)S)?)?$/i;
const CLOCK_DURATION = /^([-+])?(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/;

/** A duration in seconds: a number of seconds, an ISO 8601 duration or `[D days, ]HH:MM:SS` (pydantic's timedelta). */
export function durationSeconds(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (/^[-+]?\d+(\.\d+)?$/.test(text)) return Number(text);
  const iso = ISO_DURATION.exec(text);
  if (iso && text.length > 1 && !/^[-+]?PT?$/i.test(text)) {
    const n = (i: number) => Number((iso[i] ?? "0").replace(",", "."));
    const total = n(2) * 365 * 86400 + n(3) * 30 * 86400 + n(4) * 7 * 86400 + n(5) * 86400 + n(6) * 3600 + n(7) * 60 + n(8);
    return iso[1] === "-" ? -total : total;
  }
  const clock = CLOCK_DURATION.exec(text);
  if (clock) {
    const total = Number(clock[2] ?? 0) * 86400 + Number(clock[3]) * 3600 + Number(clock[4]) * 60 + Number(clock[5]);
    return clock[1] === "-" ? -total : total;
  }
  return null;
}

function duration(p: Problems, loc: Loc, value: unknown, nonNegative: boolean): number | undefined {
  if (typeof value !== "number" && typeof value !== "string") return p.add("time_delta_type", loc, "Input should be a valid timedelta", value);
  const seconds = durationSeconds(value);
  if (seconds === null) return p.add("time_delta_parsing", loc, "Input should be a valid timedelta, invalid duration", value, { error: "invalid duration" });
  if (nonNegative && seconds < 0) return p.add("greater_than_equal", loc, "Input should be greater than or equal to 0 seconds", value, { ge: "0 seconds" });
  return seconds;
}

/** A set of strings, written as a list without repeats. */
function stringSet(p: Problems, loc: Loc, value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return p.add("set_type", loc, "Input should be a valid set", value);
  const out: string[] = [];
  value.forEach((item, i) => {
    const s = str(p, [...loc, i], item);
    if (s !== undefined && !out.includes(s)) out.push(s);
  });
  return out;
}

/** Prefect's ResourceSpecification: label -> pattern or list of patterns. */
function resourceSpec(p: Problems, loc: Loc, value: unknown): Json | undefined {
  const spec = dict(p, loc, value);
  if (!spec) return undefined;
  const out: Json = {};
  for (const [label, pattern] of Object.entries(spec)) {
    if (typeof pattern === "string") out[label] = pattern;
    else if (Array.isArray(pattern)) {
      const list: string[] = [];
      pattern.forEach((item, i) => {
        const s = str(p, [...loc, label, i], item);
        if (s !== undefined) list.push(s);
      });
      out[label] = list;
    } else str(p, [...loc, label], pattern);
  }
  return out;
}

function matchRelated(p: Problems, loc: Loc, value: unknown): Json | Json[] | undefined {
  if (Array.isArray(value)) {
    const out: Json[] = [];
    value.forEach((item, i) => {
      const spec = resourceSpec(p, [...loc, i], item);
      if (spec) out.push(spec);
    });
    return out;
  }
  return resourceSpec(p, loc, value);
}

/** Runs `validate` on a fresh problem list; its value when it found none. */
function attempt<T>(validate: (p: Problems) => T | undefined): { value: T | undefined; problems: Problem[] } {
  const p = new Problems();
  const value = validate(p);
  return { value: p.ok ? value : undefined, problems: p.list };
}

// ---- Triggers -----------------------------------------------------------------------------------

const EVENT_TRIGGER = "EventTrigger";
const COMPOUND_TRIGGER = "function-after[validate_require(), function-after[validate_require(), CompoundTrigger]]";
const SEQUENCE_TRIGGER = "SequenceTrigger";

function eventTrigger(p: Problems, loc: Loc, data: Json): Json | undefined {
  // The model's "before" validator: `within` may not be null; a Proactive trigger waits at least 10 s.
  let within = field(data, "within");
  if (within === null) return p.valueError(loc, "`within` should be a valid timedelta", data);
  if (data.posture === "Proactive") {
    const seconds = within === MISSING ? 0 : durationSeconds(within);
    if (seconds === 0 || within === MISSING || within === false || within === "") within = 10;
    else if (seconds !== null && seconds < 10) return p.valueError(loc, "`within` for Proactive triggers must be greater than or equal to 10 seconds", data);
  }
  const type = field(data, "type");
  if (type !== MISSING) literal(p, [...loc, "type"], type, ["event"]);
  const get = <T>(key: string, fallback: T, check: (p: Problems, l: Loc, v: unknown) => T | undefined): T | undefined => {
    const v = key === "within" ? within : field(data, key);
    return v === MISSING ? fallback : check(p, [...loc, key], v);
  };
  const match = get("match", {} as Json, resourceSpec);
  const related = get("match_related", {} as Json | Json[], matchRelated);
  const after = get("after", [] as string[], stringSet);
  const expect = get("expect", [] as string[], stringSet);
  const forEach = get("for_each", [] as string[], stringSet);
  const postureValue = field(data, "posture");
  const posture =
    postureValue === MISSING ? p.add("missing", [...loc, "posture"], "Field required", data) : literal(p, [...loc, "posture"], postureValue, ["Reactive", "Proactive"]);
  const threshold = get("threshold", 1, int);
  const withinSeconds = get("within", 0, (q, l, v) => duration(q, l, v, true));
  if (!p.ok) return undefined;
  return {
    type: "event",
    id: randomUUID(),
    match,
    match_related: related,
    after,
    expect,
    for_each: forEach,
    posture,
    threshold,
    within: withinSeconds,
  };
}

function triggerList(p: Problems, loc: Loc, value: unknown, depth: number): Json[] | undefined {
  if (!Array.isArray(value)) return p.add("list_type", loc, "Input should be a valid list", value);
  const out: Json[] = [];
  value.forEach((item, i) => {
    const t = trigger(p, [...loc, i], item, depth + 1);
    if (t) out.push(t);
  });
  return out;
}

function optionalWithin(p: Problems, loc: Loc, data: Json): number | null | undefined {
  const within = field(data, "within");
  if (within === MISSING) return p.add("missing", [...loc, "within"], "Field required", data);
  if (within === null) return null;
  return duration(p, [...loc, "within"], within, false);
}

function compositeTrigger(p: Problems, loc: Loc, data: Json, kind: "compound" | "sequence", depth: number): Json | undefined {
  const type = field(data, "type");
  if (type !== MISSING) literal(p, [...loc, "type"], type, [kind]);
  const given = field(data, "triggers");
  const triggers = given === MISSING ? p.add("missing", [...loc, "triggers"], "Field required", data) : triggerList(p, [...loc, "triggers"], given, depth);
  const within = optionalWithin(p, loc, data);
  if (kind === "sequence") {
    if (!p.ok) return undefined;
    return { type: "sequence", id: randomUUID(), triggers, within };
  }
  const requireValue = field(data, "require");
  let require: number | string | undefined;
  if (requireValue === MISSING) p.add("missing", [...loc, "require"], "Field required", data);
  else if (requireValue === "any" || requireValue === "all") require = requireValue;
  else {
    const asInt = attempt((q) => int(q, [...loc, "require", "int"], requireValue));
    if (asInt.problems.length === 0) require = asInt.value;
    else {
      p.list.push(...asInt.problems);
      literal(p, [...loc, "require", "literal['any','all']"], requireValue, ["any", "all"]);
    }
  }
  if (!p.ok || !triggers) return undefined;
  if (typeof require === "number") {
    if (require < 1) return p.valueError(loc, "require must be at least 1", data);
    if (require > triggers.length) return p.valueError(loc, "require must be less than or equal to the number of triggers", data);
  }
  return { type: "compound", id: randomUUID(), triggers, within, require };
}

/** Prefect's ServerTriggerTypes (event, compound, sequence), with new ids throughout (Prefect's `reset_ids`). */
function trigger(p: Problems, loc: Loc, value: unknown, depth = 0): Json | undefined {
  const members: [string, (q: Problems, l: Loc, d: Json) => Json | undefined][] = [
    [EVENT_TRIGGER, eventTrigger],
    [COMPOUND_TRIGGER, (q, l, d) => compositeTrigger(q, l, d, "compound", depth)],
    [SEQUENCE_TRIGGER, (q, l, d) => compositeTrigger(q, l, d, "sequence", depth)],
  ];
  return union(p, loc, value, members);
}

function union(p: Problems, loc: Loc, value: unknown, members: [string, (q: Problems, l: Loc, d: Json) => Json | undefined][]): Json | undefined {
  const problems: Problem[] = [];
  for (const [tag, validate] of members) {
    const result = attempt((q) => {
      if (!isRecord(value)) return q.add("model_type", [...loc, tag], `Input should be a valid dictionary or instance of ${tag.replace(/^.*, |\]+$/g, "")}`, value);
      return validate(q, [...loc, tag], value);
    });
    if (result.problems.length === 0) return result.value;
    problems.push(...result.problems);
  }
  p.list.push(...problems);
  return undefined;
}

// ---- Actions ------------------------------------------------------------------------------------

const STATE_TYPES = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING"] as const;

type ActionSpec = {
  readonly type: string;
  readonly tag: string;
  /** The fields after `type`, each validated (MISSING when left out) into the normalized action. */
  readonly fields: (p: Problems, loc: Loc, data: Json, out: Json) => Promise<void>;
};

const optional = <T>(p: Problems, loc: Loc, value: unknown, fallback: T | null, check: (p: Problems, l: Loc, v: unknown) => T | undefined): T | null | undefined =>
  value === MISSING ? fallback : value === null ? null : check(p, loc, value);

/** `source` and the target id: "selected" needs the id, "inferred" refuses it (Prefect's `*_requires_id`). */
function targeted(idField: string): ActionSpec["fields"] {
  return async (p, loc, data, out) => {
    const source = field(data, "source");
    out.source = source === MISSING ? "selected" : literal(p, [...loc, "source"], source, ["selected", "inferred"]);
    out[idField] = optional(p, [...loc, idField], field(data, idField), null, uuid);
  };
}

function requiresId(idField: string, out: Json, p: Problems, loc: Loc, data: Json): void {
  const selected = out.source === "selected";
  const hasId = Boolean(out[idField]);
  if (selected !== hasId) p.valueError(loc, `${idField} is ${hasId ? "not allowed" : "required"}`, data);
}

async function templated(p: Problems, loc: Loc, name: string, value: string): Promise<void> {
  const problem = await templateProblem(value);
  if (problem) p.valueError([...loc, name], `'${name}' is not a valid template: ${problem.message}`, value);
}

const noFields: ActionSpec["fields"] = async () => {};
const withId = (idField: string, kind: string): ActionSpec => ({
  type: kind,
  tag: `function-after[selected_${idField.replace(/_id$/, "")}_requires_id(), ${kind
    .split("-")
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("")}]`,
  fields: async (p, loc, data, out) => {
    await targeted(idField)(p, loc, data, out);
    if (p.ok) requiresId(idField, out, p, loc, data);
  },
});

const ACTIONS: readonly ActionSpec[] = [
  { type: "do-nothing", tag: "DoNothing", fields: noFields },
  {
    type: "run-deployment",
    tag: "function-after[selected_deployment_requires_id(), RunDeployment]",
    fields: async (p, loc, data, out) => {
      await targeted("deployment_id")(p, loc, data, out);
      const parameters = optional(p, [...loc, "parameters"], field(data, "parameters"), null, dict);
      if (parameters && Object.keys(parameters).length > 0 && p.ok) {
        const problems = await parameterProblems(parameters);
        if (problems.length > 0) {
          const lines = problems.map(({ key, message }) => `${key ? `${key}:` : ""} ${message}`).join("\n  ");
          p.valueError([...loc, "parameters"], `Invalid parameters: \n${lines}`, parameters);
        }
      }
      out.parameters = parameters;
      out.job_variables = optional(p, [...loc, "job_variables"], field(data, "job_variables"), null, dict);
      const after = field(data, "schedule_after");
      out.schedule_after = after === MISSING ? 0 : duration(p, [...loc, "schedule_after"], after, true);
      if (p.ok) requiresId("deployment_id", out, p, loc, data);
    },
  },
  withId("deployment_id", "pause-deployment"),
  withId("deployment_id", "resume-deployment"),
  { type: "cancel-flow-run", tag: "CancelFlowRun", fields: noFields },
  { type: "delete-flow-run", tag: "DeleteFlowRun", fields: noFields },
  {
    type: "change-flow-run-state",
    tag: "ChangeFlowRunState",
    fields: async (p, loc, data, out) => {
      out.name = optional(p, [...loc, "name"], field(data, "name"), null, str);
      const state = field(data, "state");
      out.state = state === MISSING ? p.add("missing", [...loc, "state"], "Field required", data) : literal(p, [...loc, "state"], state, STATE_TYPES, "enum");
      out.message = optional(p, [...loc, "message"], field(data, "message"), null, str);
      const force = field(data, "force");
      out.force = force === MISSING ? false : bool(p, [...loc, "force"], force);
    },
  },
  withId("work_queue_id", "pause-work-queue"),
  withId("work_queue_id", "resume-work-queue"),
  {
    type: "send-notification",
    tag: "SendNotification",
    fields: async (p, loc, data, out) => {
      const id = field(data, "block_document_id");
      out.block_document_id = id === MISSING ? p.add("missing", [...loc, "block_document_id"], "Field required", data) : uuid(p, [...loc, "block_document_id"], id);
      const subject = field(data, "subject");
      out.subject = subject === MISSING ? "Prefect automated notification" : str(p, [...loc, "subject"], subject);
      const body = field(data, "body");
      out.body = body === MISSING ? p.add("missing", [...loc, "body"], "Field required", data) : str(p, [...loc, "body"], body);
      if (typeof out.subject === "string" && subject !== MISSING) await templated(p, loc, "subject", out.subject);
      if (typeof out.body === "string") await templated(p, loc, "body", out.body);
    },
  },
  {
    type: "call-webhook",
    tag: "CallWebhook",
    fields: async (p, loc, data, out) => {
      const id = field(data, "block_document_id");
      out.block_document_id = id === MISSING ? p.add("missing", [...loc, "block_document_id"], "Field required", data) : uuid(p, [...loc, "block_document_id"], id);
      // A payload given as an object (older clients) is kept as its JSON text, indented by 2.
      let payload = field(data, "payload");
      if (payload !== MISSING && payload !== null && typeof payload !== "string") payload = JSON.stringify(payload, null, 2);
      out.payload = payload === MISSING ? "" : payload === null ? str(p, [...loc, "payload"], payload) : payload;
      if (typeof out.payload === "string" && out.payload) await templated(p, loc, "payload", out.payload);
    },
  },
  withId("automation_id", "pause-automation"),
  withId("automation_id", "resume-automation"),
  { type: "suspend-flow-run", tag: "SuspendFlowRun", fields: noFields },
  { type: "resume-flow-run", tag: "ResumeFlowRun", fields: noFields },
  withId("work_pool_id", "pause-work-pool"),
  withId("work_pool_id", "resume-work-pool"),
];

/** The action types of Prefect's ServerActionTypes, in its order. */
export const ACTION_TYPES: readonly string[] = ACTIONS.map((a) => a.type);

async function action(p: Problems, loc: Loc, value: unknown): Promise<Json | undefined> {
  const problems: Problem[] = [];
  for (const spec of ACTIONS) {
    const q = new Problems();
    const l = [...loc, spec.tag];
    const out: Json = { type: spec.type };
    if (!isRecord(value)) {
      q.add("model_type", l, `Input should be a valid dictionary or instance of ${spec.tag.replace(/^.*, |\]+$/g, "")}`, value);
    } else {
      const type = field(value, "type");
      if (type !== MISSING) literal(q, [...l, "type"], type, [spec.type]);
      await spec.fields(q, l, value, out);
    }
    if (q.ok) return out;
    problems.push(...q.list);
  }
  p.list.push(...problems);
  return undefined;
}

async function actionList(p: Problems, loc: Loc, value: unknown): Promise<Json[] | undefined> {
  if (!Array.isArray(value)) return p.add("list_type", loc, "Input should be a valid list", value);
  const out: Json[] = [];
  for (const [i, item] of value.entries()) {
    const a = await action(p, [...loc, i], item);
    if (a) out.push(a);
  }
  return out;
}

// ---- Automations --------------------------------------------------------------------------------

/** An automation's definition (Prefect's AutomationCore), normalized. */
export interface AutomationDefinition {
  name: string;
  description: string;
  enabled: boolean;
  tags: string[];
  trigger: Json;
  actions: Json[];
  actions_on_trigger: Json[];
  actions_on_resolve: Json[];
}

const CORE_FIELDS = ["name", "description", "enabled", "tags", "trigger", "actions", "actions_on_trigger", "actions_on_resolve"];

/** What a body sets: every field of the definition it gives (left-out optional fields are absent). */
export type ValidatedBody<Extra = Record<never, never>> = { definition: AutomationDefinition; given: ReadonlySet<string> } & Extra;

const LOOPING_STATES = new Set(["prefect.flow-run.Scheduled", "prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.*"]);

/** A resource specification that every flow run matches (Prefect's `matches_every_resource_of_kind`). */
function matchesEveryFlowRun(spec: unknown): boolean {
  if (!isRecord(spec)) return false;
  const keys = Object.keys(spec);
  if (keys.length === 0) return true;
  if (keys.length !== 1 || keys[0] !== "prefect.resource.id") return false;
  const value = spec["prefect.resource.id"];
  const patterns = Array.isArray(value) ? value : [value];
  return patterns.length === 1 && patterns[0] === "prefect.flow-run.*";
}

/** Prefect's `prevent_run_deployment_loops`: the message when the automation would start runs forever. */
export function runDeploymentLoop(definition: AutomationDefinition): string | null {
  const trigger = definition.trigger;
  if (!definition.enabled || trigger.type !== "event" || trigger.posture !== "Reactive") return null;
  const expect = (trigger.expect as string[]) ?? [];
  if (!expect.some((e) => LOOPING_STATES.has(e))) return null;
  for (const a of definition.actions) {
    if (a.type !== "run-deployment") continue;
    if (a.source === "inferred") {
      return "Running an inferred deployment from a flow run state change event will lead to an infinite loop of flow runs.  Please choose a specific deployment and add additional filtering labels to the match or match_related for this automation's trigger.";
    }
    if (a.source === "selected" && matchesEveryFlowRun(trigger.match)) {
      const related = Array.isArray(trigger.match_related) ? trigger.match_related : [trigger.match_related];
      if (related.some(matchesEveryFlowRun)) {
        return "Running a selected deployment from a flow run state change event may lead to an infinite loop of flow runs.  Please include additional filtering labels on either match or match_related to narrow down which flow runs will trigger this automation to exclude flow runs from the deployment you've selected.";
      }
    }
  }
  return null;
}

/** An automation body that does not validate: pydantic's problems, `loc` relative to the body. */
export class AutomationValidationError extends Error {
  constructor(readonly problems: Problem[]) {
    super("Invalid automation");
  }
}

/**
 * Prefect's AutomationCreate (`owner_resource` allowed) or AutomationUpdate: extra keys forbidden,
 * triggers given new ids. Throws AutomationValidationError.
 */
export async function validateAutomationBody<Owner extends boolean>(
  body: unknown,
  options: { owner: Owner },
): Promise<ValidatedBody<Owner extends true ? { owner_resource: string | null } : Record<never, never>>> {
  const p = new Problems();
  if (!isRecord(body)) {
    p.add("model_attributes_type", [], "Input should be a valid dictionary or object to extract fields from", body);
    throw new AutomationValidationError(p.list);
  }
  const allowed = new Set([...CORE_FIELDS, ...(options.owner ? ["owner_resource"] : [])]);
  const given = new Set(Object.keys(body).filter((k) => allowed.has(k)));
  const name = field(body, "name");
  const definition: Partial<AutomationDefinition> = {};
  definition.name = name === MISSING ? p.add("missing", ["name"], "Field required", body) : str(p, ["name"], name);
  const description = field(body, "description");
  definition.description = description === MISSING ? "" : str(p, ["description"], description);
  const enabled = field(body, "enabled");
  definition.enabled = enabled === MISSING ? true : bool(p, ["enabled"], enabled);
  const tags = field(body, "tags");
  if (tags === MISSING) definition.tags = [];
  else if (!Array.isArray(tags)) p.add("list_type", ["tags"], "Input should be a valid list", tags);
  else definition.tags = tags.map((t, i) => str(p, ["tags", i], t)).filter((t): t is string => t !== undefined);
  const triggerValue = field(body, "trigger");
  definition.trigger = triggerValue === MISSING ? p.add("missing", ["trigger"], "Field required", body) : trigger(p, ["trigger"], triggerValue);
  const actions = field(body, "actions");
  definition.actions = actions === MISSING ? p.add("missing", ["actions"], "Field required", body) : await actionList(p, ["actions"], actions);
  for (const key of ["actions_on_trigger", "actions_on_resolve"] as const) {
    const list = field(body, key);
    definition[key] = list === MISSING ? [] : await actionList(p, [key], list);
  }
  let owner: string | null = null;
  if (options.owner) {
    const value = field(body, "owner_resource");
    owner = value === MISSING || value === null ? null : (str(p, ["owner_resource"], value) ?? null);
  }
  for (const key of Object.keys(body)) if (!allowed.has(key)) p.add("extra_forbidden", [key], "Extra inputs are not permitted", body[key]);
  if (!p.ok) throw new AutomationValidationError(p.list);
  const complete = definition as AutomationDefinition;
  const loop = runDeploymentLoop(complete);
  if (loop) {
    p.valueError([], loop, body);
    throw new AutomationValidationError(p.list);
  }
  return { definition: complete, given, ...(options.owner ? { owner_resource: owner } : {}) } as never;
}
