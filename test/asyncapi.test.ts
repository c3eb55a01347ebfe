import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DiagnosticSeverity, Parser } from "@asyncapi/parser";
import { EVENTS, FEED, type EventKind } from "@fleet/shared";
import { asyncApiDocument, rolePermissions, subjectAllowed } from "@fleet/shared/bus";
import { describe, expect, it } from "vitest";
import { useApi } from "./support/api-fixture.js";

/**
 * The bus's AsyncAPI 3 document: generated from the catalog, accepted by the AsyncAPI parser with
 * no error (and refused once a payload is broken), the same as docs/asyncapi.json, served by the api
 * beside /openapi.json, and giving the outside role exactly its NATS rights.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const parser = new Parser();

async function problems(doc: unknown): Promise<string[]> {
  const { diagnostics } = await parser.parse(JSON.stringify(doc));
  return diagnostics
    .filter((d) => d.severity === DiagnosticSeverity.Error)
    .map((d) => `${d.path.join(".")}: ${d.message}`);
}

type Doc = {
  channels: Record<string, { address: string }>;
  operations: Record<string, { action: string; channel: { $ref: string }; tags: Array<{ name: string }> }>;
  components: {
    messages: Record<string, { payload: Record<string, unknown>; headers: { required: string[] } }>;
  };
};

describe("AsyncAPI document of the bus", () => {
  const api = useApi({ prefix: "asyncapi" });
  const doc = asyncApiDocument() as Doc;

  it("parses with no error, and a broken payload is refused", async () => {
    // Two payloads broken in one document (one parse less): each is reported at its own path.
    const broken = structuredClone(doc);
    const requested = broken.components.messages.sessionRequested?.payload as { properties: { v: object } };
    requested.properties.v = { type: "integr" };
    (broken.components.messages.sessionCompleted as { payload: object }).payload = {
      type: "object",
      required: "sessionId",
    };
    const [good, bad] = await Promise.all([problems(doc), problems(broken)]);
    expect(good).toEqual([]);
    expect(bad.join("\n")).toMatch(/sessionRequested\.payload/);
    expect(bad.join("\n")).toMatch(/sessionCompleted\.payload/);
  });

  it("has every subject with its payload and Nats-Msg-Id, as in docs/asyncapi.json", () => {
    const kinds = Object.keys(EVENTS) as EventKind[];
    expect(Object.values(doc.channels).map((c) => c.address)).toEqual(
      kinds.map((k) => EVENTS[k].subject.replace(/\*$/, "{sessionId}")),
    );
    for (const message of Object.values(doc.components.messages)) {
      expect(message.headers.required).toEqual(["Nats-Msg-Id"]);
      expect(message.payload).toMatchObject({ type: "object", additionalProperties: false });
    }
    const written = JSON.parse(readFileSync(join(ROOT, "docs/asyncapi.json"), "utf8"));
    expect(written, "docs/asyncapi.json is stale: npx tsc -b && npm run schemas").toEqual(doc);
  });

  it("gives the outside role exactly what its NATS user may publish and read", () => {
    const outside = Object.values(doc.operations).filter((o) => o.tags.some((t) => t.name === "outside"));
    const sent = outside.filter((o) => o.action === "send").map((o) => o.channel.$ref.split("/").pop());
    const read = outside.filter((o) => o.action === "receive").map((o) => o.channel.$ref.split("/").pop());
    const id = (k: string) => `session${k[0]?.toUpperCase()}${k.slice(1)}`;
    expect(sent.sort()).toEqual(FEED.requests.map(id).sort());
    expect(read.sort()).toEqual(FEED.lent.map(id).sort());
    const rights = rolePermissions("outside");
    expect(subjectAllowed(rights.publish.allow, "session.running")).toBe(false);
    expect(subjectAllowed(rights.subscribe.allow, "session.log.>")).toBe(true);
    expect(subjectAllowed(rights.subscribe.allow, "session.requested")).toBe(false);
  });

  it("is served by the api beside /openapi.json, under the same access", async () => {
    const [asyncSpec, openSpec] = await Promise.all(
      ["/asyncapi.json", "/openapi.json"].map((p) => fetch(`${api.base}${p}`)),
    );
    expect(openSpec?.status).toBe(200);
    expect(asyncSpec?.status).toBe(200);
    expect(asyncSpec?.headers.get("content-type")).toMatch(/application\/json/);
    expect(await asyncSpec?.json()).toEqual(doc);
  });
});
