import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionConfig } from "../shared/src/index.js";
import { SimulatedSandboxProvider } from "../devtools/src/simulated/index.js";
import { useApi } from "./support/api-fixture.js";
import { logger } from "./support/fixtures.js";
import { jsonOf, rawRequest } from "./support/http.js";

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  minItems?: number;
  minLength?: number;
  minimum?: number;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
};
type Operation = {
  security?: unknown[];
  parameters?: Array<{ in: string; name: string; required?: boolean }>;
  requestBody?: { content: Record<string, { schema: Schema }> };
};
type Spec = { paths: Record<string, Record<string, Operation>> };

/** Routes anyone may call; every other operation in the document must refuse a caller without credentials. */
const PUBLIC = new Set(["/healthz", "/readyz"]);
const IDS: Record<string, string> = { id: "ses-0a1b2c", cardId: "card-1" };
const MARKER = "prompt-marker-7f3e";
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/** The smallest value the schema accepts (enough to get past a handler's validation). */
function sample(s: Schema): unknown {
  const pick = s.anyOf?.[0] ?? s.oneOf?.[0];
  if (pick) return sample(pick);
  if (s.enum) return s.enum[0];
  if (s.type === "object")
    return Object.fromEntries((s.required ?? []).map((k) => [k, sample(s.properties?.[k] ?? {})]));
  if (s.type === "array") return Array.from({ length: Math.max(1, s.minItems ?? 0) }, () => sample(s.items ?? {}));
  if (s.type === "integer" || s.type === "number") return Math.max(1, s.minimum ?? 1);
  if (s.type === "boolean") return true;
  return "p1".padEnd(s.minLength ?? 0, "x");
}

const hex = (c: string, upper: boolean): string => {
  const h = c.charCodeAt(0).toString(16).padStart(2, "0");
  return `%${upper ? h.toUpperCase() : h}`;
};

/** Spellings of one path that a router, a proxy or a naive prefix check may read differently. */
function pathVariants(path: string): string[] {
  const out = new Set<string>([
    path,
    `${path}/`,
    `/${path}`,
    `${path}//`,
    path.toUpperCase(),
    path.replace(/\/([a-z])/g, (_, c: string) => `/${c.toUpperCase()}`),
  ]);
  const chars = [...path];
  for (const upper of [false, true]) {
    chars.forEach((_c, i) => {
      if (i === 0) return;
      out.add(chars.map((d, j) => (j === i ? hex(d, upper) : d)).join(""));
    });
    out.add(chars.map((d, j) => (j > 0 && d !== "/" ? hex(d, upper) : d)).join(""));
    out.add(chars.map((d, j) => (j > 0 ? hex(d, upper) : d)).join(""));
  }
  const segments = path.split("/").slice(1);
  segments.forEach((_, i) => {
    const head = segments.slice(0, i + 1);
    const tail = segments.slice(i + 1);
    out.add(`/${[...head, ".", ...tail].join("/")}`);
    out.add(`/${[...head, "%2e", ...tail].join("/")}`);
    out.add(`/${[...head, "x", "..", ...tail].join("/")}`);
    out.add(`/${[...head, "", ...tail].join("/")}`);
  });
  out.add(`/x/..${path}`);
  out.add(`/./${path.slice(1)}`);
  out.add(`/%2e%2e${path}`);
  out.add(`${path};x`);
  return [...out];
}

describe("access decided on the matched route", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-route-auth-"));
  // Registered first, so it runs after the fixture's teardown.
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const tokens = { keys: [{ kid: "k1", secret: "s".repeat(40) }] };
  const api = useApi({
    prefix: "rauth",
    api: {
      submitsPerMinute: 1_000_000,
      callbacks: { tokens, provider: new SimulatedSandboxProvider({ dir }, logger) },
    },
  });
  let spec: Spec;

  beforeAll(async () => {
    await api.store.create({
      id: IDS.id as string,
      projectId: "p1",
      cardId: IDS.cardId as string,
      prompt: MARKER,
      config: SessionConfig.parse({}),
    });
    spec = jsonOf((await rawRequest(api.base, "GET", "/openapi.json")).text) as Spec;
  });

  /** Every operation of the document: its filled path (and query) and a body its schema accepts. */
  const operations = (): Array<{ method: string; template: string; path: string; query: string; body?: string }> =>
    Object.entries(spec.paths).flatMap(([template, ops]) =>
      Object.entries(ops).map(([method, op]) => {
        const path = template.replace(/\{(\w+)\}/g, (_, name: string) => IDS[name] ?? "x1");
        const query = (op.parameters ?? [])
          .filter((p) => p.in === "query" && p.required)
          .map((p) => `${p.name}=p1`)
          .join("&");
        const schema = op.requestBody?.content["application/json"]?.schema;
        return {
          method: method.toUpperCase(),
          template,
          path,
          query,
          ...(schema ? { body: JSON.stringify(sample(schema)) } : {}),
        };
      }),
    );

  it("reaches every keyed operation's handler with a key (so the refusals below are the key's doing)", async () => {
    const ops = operations().filter((o) => !PUBLIC.has(o.template) && !o.template.startsWith("/v1/callbacks/"));
    expect(ops.length).toBeGreaterThanOrEqual(8);
    for (const o of ops) {
      const r = await rawRequest(api.base, o.method, `${o.path}${o.query ? `?${o.query}` : ""}`, {
        headers: { ...api.auth, ...(o.body ? { "content-type": "application/json" } : {}) },
        ...(o.body ? { body: o.body } : {}),
      });
      expect(r.status, `${o.method} ${o.path}: ${r.text}`).toBeLessThan(300);
    }
  });

  it("refuses every operation without credentials, however its path is spelt", { timeout: 120_000 }, async () => {
    const ops = operations().filter((o) => !PUBLIC.has(o.template));
    const wrong: string[] = [];
    let asked = 0;
    for (const o of ops) {
      for (const variant of pathVariants(o.path)) {
        const target = `${variant}${o.query ? `?${o.query}` : ""}`;
        for (const method of new Set([o.method, ...(o.method === "GET" ? ["HEAD"] : []), ...METHODS])) {
          const withBody = o.body !== undefined && method !== "GET" && method !== "HEAD";
          const r = await rawRequest(
            api.base,
            method,
            target,
            withBody ? { headers: { "content-type": "application/json" }, body: o.body ?? "" } : {},
          );
          asked++;
          const ok = [401, 404, 405].includes(r.status);
          const shaped =
            method === "HEAD" ||
            (jsonOf(r.text) as { error?: { code?: unknown } } | undefined)?.error?.code !== undefined;
          if (!ok || !shaped || r.text.includes(MARKER))
            wrong.push(`${method} ${target} -> ${r.status} ${r.text.slice(0, 80)}`);
        }
      }
    }
    expect(asked).toBeGreaterThan(1_000);
    expect(
      wrong,
      `${wrong.length} of ${asked} answered without credentials:\n${wrong.slice(0, 40).join("\n")}`,
    ).toEqual([]);
  });

  it("answers a plain path without credentials 401 in the error shape", async () => {
    for (const o of operations().filter((x) => !PUBLIC.has(x.template))) {
      const r = await rawRequest(
        api.base,
        o.method,
        `${o.path}${o.query ? `?${o.query}` : ""}`,
        o.body ? { headers: { "content-type": "application/json" }, body: o.body } : {},
      );
      expect({
        op: `${o.method} ${o.template}`,
        status: r.status,
        code: (jsonOf(r.text) as { error?: { code?: string } })?.error?.code,
      }).toEqual({ op: `${o.method} ${o.template}`, status: 401, code: "unauthorized" });
    }
  });

  it("will not start with a route that declares no access", async () => {
    const other = await api.create();
    const register = (): unknown => other.get("/v1/undeclared", async () => ({ secret: MARKER }));
    await expect(async () => {
      register();
      await other.ready();
    }).rejects.toThrow(/declares no access/);
    await other.close().catch(() => undefined);
  });
});
