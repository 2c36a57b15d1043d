import { openDatabase, loadDatabaseConfig } from "@prefect/db";
import { randomUUID } from "node:crypto";
const url = process.env.URL;
const db = await openDatabase(loadDatabaseConfig({PREFECT_DATABASE_URL: url}), {migrate: true});
const N = Number(process.env.N ?? 1000), R = Number(process.env.R ?? 10);
const run = randomUUID(), flow = randomUUID();
const ev = (i) => ({ id: randomUUID(), occurred: new Date().toISOString(), event: "bench.x",
  resource: { "prefect.resource.id": `prefect.task-run.${randomUUID()}`, "prefect.resource.name": `task-${i%100}` },
  related: [ { "prefect.resource.id": `prefect.flow-run.${run}`, "prefect.resource.role": "flow-run", "prefect.resource.name": "bench-run" },
    { "prefect.resource.id": `prefect.flow.${flow}`, "prefect.resource.role": "flow", "prefect.resource.name": "bench" },
    { "prefect.resource.id": "prefect.tag.bench", "prefect.resource.role": "tag" } ],
  payload: { intended: { from: "RUNNING", to: "COMPLETED" } }, received: new Date().toISOString() });
for (let r = 0; r < R; r++) {
  const batch = Array.from({ length: N }, (_, i) => ev(i));
  const t = performance.now();
  await db.events.createMany(batch);
  console.log(`${N} events: ${(performance.now() - t).toFixed(1)} ms`);
}
await db.close();
