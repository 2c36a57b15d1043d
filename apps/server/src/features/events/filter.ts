/**
 * Prefect's EventFilter on the server side: the defaults it fills in (`occurred` since the start of
 * the day 180 days ago, until now; newest first), and matching one event in memory (what
 * `/api/events/out` streams), as Prefect's `EventFilter.includes` does.
 */
import { addSeconds, now, parseTextSearch, type StoredEvent, type Timestamp, toMicros, toTimestamp, fromMicros } from "@prefect/db";
import type { z } from "zod";
import type * as api from "../../generated/prefect-api.js";
import type { ReceivedEvent } from "@prefect/orchestration";

export type EventFilterInput = z.output<typeof api.EventFilter>;
export type ResolvedEventFilter = EventFilterInput & {
  occurred: { since: Timestamp; until: Timestamp };
  order: "ASC" | "DESC";
};

/** An event as Prefect's API shows it (ReceivedEvent): every field present. */
export type WireEvent = Required<ReceivedEvent>;

const DAY_MICROS = 86_400_000_000;

export function startOfDay(at: Timestamp): Timestamp {
  const micros = toMicros(at);
  return fromMicros(micros - (((micros % DAY_MICROS) + DAY_MICROS) % DAY_MICROS));
}

/** The filter with Prefect's defaults filled in, as of `at`. */
export function resolveEventFilter(filter: EventFilterInput | null | undefined, at: Timestamp = now()): ResolvedEventFilter {
  const given = filter ?? {};
  return {
    ...given,
    occurred: {
      since: given.occurred?.since ?? addSeconds(startOfDay(at), -180 * 86_400),
      until: given.occurred?.until ?? at,
    },
    order: given.order ?? "DESC",
  };
}

export function toWireEvent(event: ReceivedEvent | StoredEvent): WireEvent {
  return {
    occurred: toTimestamp(event.occurred),
    event: event.event,
    resource: event.resource,
    related: event.related ?? [],
    payload: event.payload ?? {},
    id: event.id,
    follows: event.follows ?? null,
    received: toTimestamp(event.received),
  };
}

const globCache = new Map<string, RegExp>();

/** Python's fnmatchcase: `*`, `?`, `[seq]`, `[!seq]`. */
export const fnmatchcase = (value: string, pattern: string): boolean => glob(pattern).test(value);

function glob(pattern: string): RegExp {
  let compiled = globCache.get(pattern);
  if (compiled) return compiled;
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") source += "[\\s\\S]*";
    else if (c === "?") source += "[\\s\\S]";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end === -1) source += "\\[";
      else {
        let body = pattern.slice(i + 1, end);
        const negated = body.startsWith("!");
        if (negated) body = body.slice(1);
        source += `[${negated ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
        i = end;
      }
    } else source += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  compiled = new RegExp(`^${source}$`);
  if (globCache.size > 1000) globCache.clear();
  globCache.set(pattern, compiled);
  return compiled;
}

/** Prefect's `matches`: a glob, negated by a leading `!`; a missing label never matches. */
function labelMatches(expected: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  const negated = expected.startsWith("!");
  const matched = glob(negated ? expected.slice(1) : expected).test(value);
  return negated ? !matched : matched;
}

type Specification = Readonly<Record<string, string | readonly string[]>>;

/** Prefect's ResourceSpecification.matches: every label matches one of its expected values. */
function specificationMatches(spec: Specification, resource: Readonly<Record<string, string>>): boolean {
  return Object.entries(spec).every(([label, expected]) => {
    const values = typeof expected === "string" ? [expected] : expected;
    return values.some((v) => labelMatches(v, resource[label]));
  });
}

const asList = <T>(value: T | T[] | null | undefined): T[] => (value === null || value === undefined ? [] : Array.isArray(value) ? value : [value]);
const present = <T>(list: readonly T[] | null | undefined): list is readonly T[] => Array.isArray(list) && list.length > 0;

/** Does `event` match `filter` (Prefect's `EventFilter.includes`)? */
export function eventMatches(filter: ResolvedEventFilter, event: WireEvent): boolean {
  if (event.occurred < filter.occurred.since || event.occurred > filter.occurred.until) return false;

  const name = filter.event;
  if (name) {
    if (present(name.prefix) && !name.prefix.some((p) => event.event.startsWith(p))) return false;
    if (present(name.exclude_prefix) && name.exclude_prefix.some((p) => event.event.startsWith(p))) return false;
    if (present(name.name) && !name.name.includes(event.event)) return false;
    if (present(name.exclude_name) && name.exclude_name.includes(event.event)) return false;
  }

  const resourceId = event.resource["prefect.resource.id"] ?? "";
  const resource = filter.resource;
  if (resource) {
    if (present(resource.id) && !resource.id.includes(resourceId)) return false;
    if (present(resource.id_prefix) && !resource.id_prefix.some((p) => resourceId.startsWith(p))) return false;
    if (resource.labels && Object.keys(resource.labels).length > 0 && !specificationMatches(resource.labels, event.resource)) return false;
  }

  // Related resources (Prefect's in-memory filter leaves these out; the stored-event query applies them,
  // and so does this, so that a subscription streams what its backfill would have read).
  for (const related of asList(filter.related)) {
    const candidates = event.related.filter((r) => {
      const id = r["prefect.resource.id"] ?? "";
      const role = r["prefect.resource.role"] ?? "";
      if (present(related.id) && !related.id.includes(id)) return false;
      if (present(related.role) && !related.role.includes(role)) return false;
      if (related.labels && Object.keys(related.labels).length > 0 && !specificationMatches(related.labels, r)) return false;
      return true;
    });
    const narrows = present(related.id) || present(related.role) || (related.labels && Object.keys(related.labels).length > 0);
    if (narrows && candidates.length === 0) return false;
    if (present(related.resources_in_roles)) {
      const pairs = related.resources_in_roles;
      if (!event.related.some((r) => pairs.some(([id, role]) => r["prefect.resource.id"] === id && r["prefect.resource.role"] === role))) return false;
    }
  }

  for (const any of asList(filter.any_resource)) {
    const matchesOne = [event.resource, ...event.related].some((r) => {
      const id = r["prefect.resource.id"] ?? "";
      if (present(any.id) && !any.id.includes(id)) return false;
      if (present(any.id_prefix) && !any.id_prefix.some((p) => id.startsWith(p))) return false;
      if (any.labels && Object.keys(any.labels).length > 0 && !specificationMatches(any.labels, r)) return false;
      return true;
    });
    if (!matchesOne) return false;
  }

  if (present(filter.id?.id) && !filter.id.id.includes(event.id)) return false;

  if (filter.text?.query.trim()) {
    const searchable = [
      event.event,
      ...Object.values(event.resource),
      ...event.related.flatMap((r) => Object.values(r)),
      JSON.stringify(event.payload),
    ]
      .join(" ")
      .toLowerCase();
    const { include, exclude, required } = parseTextSearch(filter.text.query);
    if (include.length > 0 && !include.some((term) => searchable.includes(term.toLowerCase()))) return false;
    if (exclude.some((term) => searchable.includes(term.toLowerCase()))) return false;
    if (!required.every((term) => searchable.includes(term.toLowerCase()))) return false;
  }
  return true;
}
