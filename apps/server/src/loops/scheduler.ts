/**
 * The scheduler loops (Prefect's services/scheduler.py): `Scheduler` fills the deployments short of
 * runs, `RecentDeploymentsScheduler` the ones changed since its last look (see features/schedules).
 */
import type { AppContext, Logger } from "../context.js";
import { type PassOptions, type SchedulerContext, scheduleDeploymentsShortOfRuns, scheduleRecentDeployments } from "../features/schedules/service.js";
import { LoopService, type Service } from "./loop.js";

/** Both scheduler loops: the main one and the one for recently updated deployments. */
export function schedulers(context: AppContext, log: Logger): Service[] {
  const s = context.settings.services.scheduler;
  const loop = (name: string, seconds: number, pass: (context: SchedulerContext, options: PassOptions) => Promise<number>) =>
    new LoopService(
      name,
      seconds,
      async (signal) => {
        const inserted = await pass(context, { signal, log });
        log.info({ service: name, inserted }, `Scheduled ${inserted} runs.`);
      },
      (error) => log.error({ err: error, service: name }, "scheduling runs failed; trying again on the next loop"),
    );
  return [loop("Scheduler", s.loopSeconds, scheduleDeploymentsShortOfRuns), loop("RecentDeploymentsScheduler", s.recentDeploymentsLoopSeconds, scheduleRecentDeployments)];
}
