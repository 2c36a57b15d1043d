/**
 * Automations as this app reads and writes them: the library's automations API (list, toggle,
 * delete, templates, related resources) plus what its pages need and the library leaves to the app:
 * an automation with its trigger and actions, creating one and replacing one. Triggers and actions go
 * through the library's mappers both ways.
 */
import {
  type AutomationAction,
  type AutomationTrigger,
  mapper,
  WorkspaceAutomationsApi,
} from "@prefecthq/prefect-ui-library";
import { inject, type InjectionKey } from "vue";

/** What the wizard edits, and what an automation's page shows. */
export interface AutomationForm {
  name: string;
  description: string;
  enabled: boolean;
  trigger: AutomationTrigger;
  actions: AutomationAction[];
}

export interface AutomationDetails extends AutomationForm {
  id: string;
}

interface AutomationBody {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  trigger: Parameters<typeof mapTrigger>[0];
  actions: Parameters<typeof mapAction>[0][];
}

const mapTrigger = (trigger: never): AutomationTrigger => mapper.map("AutomationTriggerResponse", trigger, "AutomationTrigger");
const mapAction = (action: never): AutomationAction => mapper.map("AutomationActionResponse", action, "AutomationAction");

const details = (data: AutomationBody): AutomationDetails => ({
  id: data.id,
  name: data.name,
  description: data.description,
  enabled: data.enabled,
  trigger: mapTrigger(data.trigger as never),
  actions: data.actions.map((action) => mapAction(action as never)),
});

export class AutomationsApi extends WorkspaceAutomationsApi {
  async getAutomationDetails(id: string): Promise<AutomationDetails> {
    const { data } = await this.get<AutomationBody>(`/${id}`);
    return details(data);
  }

  /** Every automation with its trigger and actions, by name. */
  async getAutomationsDetails(): Promise<AutomationDetails[]> {
    const { data } = await this.post<AutomationBody[]>("/filter", { sort: "NAME_ASC" });
    return data.map(details);
  }

  async createAutomation(form: AutomationForm): Promise<string> {
    const { data } = await this.post<{ id: string }>("/", this.#request(form));
    return data.id;
  }

  async replaceAutomation(id: string, form: AutomationForm): Promise<void> {
    await this.put(`/${id}`, this.#request(form));
  }

  #request(form: AutomationForm) {
    return {
      name: form.name,
      description: form.description,
      enabled: form.enabled,
      trigger: mapper.map("AutomationTrigger", form.trigger, "AutomationTriggerRequest"),
      actions: form.actions.map((action) => mapper.map("AutomationAction", action, "AutomationActionRequest")),
    };
  }
}

export const automationsApiKey: InjectionKey<AutomationsApi> = Symbol("automationsApi");

export function useAutomationsApi(): AutomationsApi {
  const api = inject(automationsApiKey);
  if (!api) throw new Error("the automations API is not provided");
  return api;
}
