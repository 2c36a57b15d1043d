/**
 * The HTTP floors, as a process of their own like the server: a minimal Fastify app with
 *  - `GET /api/floor/noop/:id`: no I/O; answers the JSON of a flow run the real server returned;
 *  - `POST /api/floor/insert`: one raw INSERT of a flow_run row copied from one the server stored
 *    (new id and name, the request's flow_id), answered 201 with the row.
 * Started by the bench with its settings in the environment; prints `floor listening on URL`.
 *
 *   FLOOR_BACKEND        sqlite | postgres
 *   FLOOR_DATABASE       the SQLite file or the PostgreSQL URL
 *   FLOOR_TEMPLATE_RUN   id of the flow run to copy
 *   FLOOR_GET_BODY       the JSON the noop route answers
 */
import { randomRunName, uuid7 } from "@prefect/db";
import Fastify from "fastify";
import { openPostgresRaw, openSqliteRaw } from "./raw.js";

const setting = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const raw = setting("FLOOR_BACKEND") === "sqlite" ? openSqliteRaw(setting("FLOOR_DATABASE")) : openPostgresRaw(setting("FLOOR_DATABASE"), 10);
const [template] = await raw.rows("SELECT * FROM flow_run WHERE id = ?", [setting("FLOOR_TEMPLATE_RUN")]);
if (!template) throw new Error("the template flow run does not exist");
const columns = Object.keys(template);
const getBody: unknown = JSON.parse(setting("FLOOR_GET_BODY"));

const app = Fastify({ logger: false });
app.get("/api/floor/noop/:id", async () => getBody);
app.post("/api/floor/insert", async (request, reply) => {
  const body = request.body as { flow_id?: unknown };
  const row: Record<string, unknown> = { ...template, id: uuid7(), name: randomRunName(), flow_id: typeof body.flow_id === "string" ? body.flow_id : template.flow_id };
  await raw.insert([{ table: "flow_run", columns, rows: [columns.map((c) => row[c])] }]);
  return reply.code(201).send(row);
});

const stop = () => {
  void app
    .close()
    .then(() => raw.close())
    .then(() => process.exit(0));
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
const address = await app.listen({ host: "127.0.0.1", port: 0 });
process.stdout.write(`floor listening on ${address}/api\n`);
