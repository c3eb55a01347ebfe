import { createServer, type Server } from "node:http";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCHEMA_VERSION, SessionConfig, subjectFor } from "../shared/src/index.js";
import { freePort } from "../devtools/src/infra/index.js";
import { SCENARIOS } from "../devtools/src/model/index.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { api } from "./support/fleet.js";

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
}

/** An OTLP/HTTP receiver (JSON, as the exporter sends it): every span it was sent, with its service. */
function otlpReceiver(): { server: Server; spans: ReceivedSpan[] } {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      expect(req.url).toBe("/v1/traces");
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans: Array<{
          resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
          scopeSpans: Array<{ spans: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string }> }>;
        }>;
      };
      for (const rs of body.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "";
        for (const ss of rs.scopeSpans)
          for (const s of ss.spans) spans.push({ service, ...s, parentSpanId: s.parentSpanId ?? "" });
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  return { server, spans };
}

const receiver = otlpReceiver();
const port = await freePort();
beforeAll(() => new Promise<void>((r) => receiver.server.listen(port, "127.0.0.1", r)));
afterAll(() => new Promise<void>((r) => receiver.server.close(() => r())));

/**
 * One trace per session across every stage, with real processes, a real OpenCode and the scripted
 * model: the services export over OTLP/HTTP to a receiver in this test.
 */
describe("one trace per session across api, spawner, poller and watchdog", () => {
  const fleet = useTestFleet({
    prefix: "otel",
    model: { scenario: "demo", byModel: SCENARIOS },
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, WATCHDOG_INTERVAL_MS: "500" },
    services: [["api"], ["spawner"], ["poller"], ["watchdog"]],
    nats: true,
  });
  const of = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);

  it("a session submitted over HTTP: its submit, every setup step, the watch and each tool call are one trace", async () => {
    const caller = "0af7651916cd43dd8448eb211c80319c";
    const posted = await api<{ sessionId: string }>(
      fleet,
      "POST",
      "/v1/sessions",
      { projectId: "p-otel", prompt: "go" },
      { traceparent: `00-${caller}-b7ad6b7169203331-01` },
    );
    expect((await fleet.ended(posted.body.sessionId, 120_000)).status).toBe("completed");
    // The caller's traceparent is the parent of the whole session.
    await expect
      .poll(
        () =>
          of(caller)
            .map((s) => `${s.service}:${s.name}`)
            .sort(),
        { timeout: 20_000 },
      )
      .toEqual(
        expect.arrayContaining([
          "api:api.submit",
          "spawner:spawner",
          "spawner:setup.sandbox_create",
          "spawner:setup.restore",
          "spawner:setup.server_start",
          "spawner:setup.prompt_send",
          "poller:poller",
          "poller:agent.tool write",
          "poller:agent.tool bash",
          "poller:agent.tool todowrite",
        ]),
      );
    const spans = of(caller);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    // Every span hangs from another span of the trace, up to the caller's.
    for (const s of spans) expect(byId.has(s.parentSpanId) || s.parentSpanId === "b7ad6b7169203331", s.name).toBe(true);
    const setup = spans.find((s) => s.name === "setup.server_start");
    expect(byId.get(setup?.parentSpanId ?? "")?.name).toBe("spawner");
  }, 150_000);

  it("a request an outside system published with its own traceparent, cancelled over HTTP: the watchdog's end is in that trace", async () => {
    const outside = "4bf92f3577b34da6a3ce929d0e0e4736";
    const sessionId = `otel-bus-${fleet.namespace}`;
    const h = natsHeaders();
    h.set("traceparent", `00-${outside}-00f067aa0ba902b7-01`);
    await jetstream(fleet.nc).publish(
      subjectFor(fleet.namespace, "requested"),
      JSON.stringify({
        v: SCHEMA_VERSION,
        sessionId,
        projectId: "p-otel",
        prompt: "take your time",
        config: SessionConfig.parse({ model: "slow" }),
        requestedAt: Date.now(),
      }),
      { msgID: `requested:${sessionId}`, headers: h },
    );
    await expect
      .poll(async () => (await api<{ status: string }>(fleet, "GET", `/v1/sessions/${sessionId}`)).body.status, {
        timeout: 60_000,
      })
      .toBe("running");
    await api(fleet, "POST", `/v1/sessions/${sessionId}/cancel`, { reason: "enough" });
    expect((await fleet.ended(sessionId, 60_000)).status).toBe("cancelled");
    await expect
      .poll(() => of(outside).map((s) => `${s.service}:${s.name}`), { timeout: 20_000 })
      .toEqual(expect.arrayContaining(["spawner:spawner", "api:api.cancel", "watchdog:watchdog.cancel"]));
  }, 120_000);
});
