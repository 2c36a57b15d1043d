/** Automations as Prefect's API shows them (its `Automation` model, fields in its order). */
import type { Automation } from "@prefect/db";

export function automationResponse(a: Automation) {
  return {
    name: a.name,
    description: a.description,
    enabled: a.enabled,
    tags: a.tags,
    trigger: a.trigger,
    actions: a.actions,
    actions_on_trigger: a.actions_on_trigger,
    actions_on_resolve: a.actions_on_resolve,
    id: a.id,
    created: a.created,
    updated: a.updated,
  };
}
