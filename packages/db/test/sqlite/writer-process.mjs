// One of several processes writing to the same SQLite file at once (see sqlite.test.ts). It opens the
// database (migrating it if it is the first), then records `runs` flow runs through three states each,
// with logs, and prints what it wrote.
import { loadDatabaseConfig, openDatabase } from "../../dist/index.js";

const [path, runs] = process.argv.slice(2);
const db = await openDatabase(loadDatabaseConfig({ PREFECT_DATABASE_PATH: path, PREFECT_SERVER_DATABASE_TIMEOUT: "60" }));
const { row: flow } = await db.flows.create({ name: "shared-flow" });
const ids = [];
for (let i = 0; i < Number(runs); i++) {
  const { row: run } = await db.flowRuns.create({ flow_id: flow.id, state: { type: "PENDING" } });
  await db.flowRuns.setState(run.id, { type: "RUNNING" }, { run_count: 1 });
  await db.logs.createMany([1, 2, 3].map((n) => ({ name: "worker", level: 20, message: `line ${n}`, timestamp: new Date().toISOString(), flow_run_id: run.id })));
  await db.transaction(async (tx) => {
    await tx.flowRuns.setState(run.id, { type: "COMPLETED" });
    await tx.flows.update(flow.id, { tags: [`process-${process.pid}`] });
  });
  ids.push(run.id);
}
await db.close();
process.stdout.write(JSON.stringify({ flow: flow.id, ids }));
