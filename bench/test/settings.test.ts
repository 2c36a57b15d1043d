import { describe, expect, it } from "vitest";
import { DEFAULT_POSTGRES_URL, FIGURES, parseSettings, UsageError } from "../src/settings.js";

describe("the bench's settings", () => {
  it("runs both parts, end to end first, on both backends, every figure, by default", () => {
    const s = parseSettings([], {});
    expect(s.parts).toEqual(["e2e", "db"]);
    expect(s.backends).toEqual(["sqlite", "postgres"]);
    expect([...s.figures]).toEqual([...FIGURES]);
    expect(s).toMatchObject({ seconds: 5, smoke: false, connections: 10, postgresUrl: DEFAULT_POSTGRES_URL, profile: null, markdown: false });
  });

  it("picks a part, and keeps end to end first when both are named", () => {
    expect(parseSettings(["db"], {}).parts).toEqual(["db"]);
    expect(parseSettings(["db", "e2e"], {}).parts).toEqual(["e2e", "db"]);
  });

  it("makes a smoke run of --smoke or of one second per measurement", () => {
    expect(parseSettings(["--smoke"], {})).toMatchObject({ seconds: 1, smoke: true });
    expect(parseSettings([], { PREFECT_BENCH_SECONDS: "1" })).toMatchObject({ seconds: 1, smoke: true });
    expect(parseSettings([], { PREFECT_BENCH_SECONDS: "2.5" })).toMatchObject({ seconds: 2.5, smoke: false });
  });

  it("reads backends, figures, connections, the PostgreSQL URL and the profile from the environment", () => {
    const s = parseSettings(["--markdown"], {
      PREFECT_BENCH_BACKENDS: "postgres",
      PREFECT_BENCH_FIGURES: "create, get",
      PREFECT_BENCH_CONNECTIONS: "4",
      PREFECT_BENCH_POSTGRES_URL: "postgresql://bench@db.example:5433/x",
      PREFECT_BENCH_PROFILE: "logs",
    });
    expect(s).toMatchObject({ backends: ["postgres"], connections: 4, postgresUrl: "postgresql://bench@db.example:5433/x", profile: "logs", markdown: true });
    expect([...s.figures]).toEqual(["create", "get"]);
    expect(parseSettings(["--profile"], {}).profile).toBe("create");
    expect(parseSettings(["--profile=events-ws"], {}).profile).toBe("events-ws");
  });

  it("refuses what it does not know, naming it", () => {
    const refused: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [["fast"], {}, /unknown argument "fast"/],
      [[], { PREFECT_BENCH_SECONDS: "0" }, /PREFECT_BENCH_SECONDS/],
      [[], { PREFECT_BENCH_SECONDS: "soon" }, /PREFECT_BENCH_SECONDS/],
      [[], { PREFECT_BENCH_BACKENDS: "mysql" }, /PREFECT_BENCH_BACKENDS: unknown value "mysql"/],
      [[], { PREFECT_BENCH_FIGURES: "create,teleport" }, /PREFECT_BENCH_FIGURES: unknown value "teleport"/],
      [[], { PREFECT_BENCH_CONNECTIONS: "1.5" }, /PREFECT_BENCH_CONNECTIONS/],
      [[], { PREFECT_BENCH_POSTGRES_URL: "not a url" }, /PREFECT_BENCH_POSTGRES_URL/],
      [["--profile=claim"], {}, /cannot profile "claim"/],
    ];
    for (const [argv, env, message] of refused) {
      expect(() => parseSettings(argv, env)).toThrow(UsageError);
      expect(() => parseSettings(argv, env)).toThrow(message);
    }
  });
});
