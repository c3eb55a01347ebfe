import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "@fleet/shared/log";
import { parseScenario, turnIndex, type ScenarioInput } from "./scenario.js";
import { SCENARIOS } from "./scenarios/index.js";
import { startScriptedModel, type ScriptedModel } from "./server.js";

const logger = createLogger({ name: "test", level: "silent" });
const tools = [{ type: "function", function: { name: "write", parameters: {} } }];
const open: ScriptedModel[] = [];

async function start(scenario: ScenarioInput, byModel?: Record<string, ScenarioInput>): Promise<ScriptedModel> {
  const model = await startScriptedModel({ scenario, logger, ...(byModel ? { byModel } : {}) });
  open.push(model);
  return model;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()));
});

function post(model: ScriptedModel, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${model.url}/chat/completions`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
    ...(signal ? { signal } : {}),
  });
}

/** The `data:` payloads of an SSE body, `[DONE]` included as a string. */
async function chunks(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((block) => block.startsWith("data: "))
    .map((block) => block.slice(6))
    .map((data) => (data === "[DONE]" ? data : JSON.parse(data)));
}

const user = { role: "user", content: "hi" };

describe("scripted model", () => {
  it("streams text deltas, a stop finish and a usage chunk", async () => {
    const model = await start({ turns: [{ type: "text", text: "Hello, streaming world!" }], chunkChars: 5 });
    const res = await post(model, { model: "m", stream: true, tools, messages: [user] });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const all = await chunks(res);
    expect(all.at(-1)).toBe("[DONE]");
    const bodies = all.slice(0, -1) as Array<{
      object: string;
      choices: Array<{ delta: { content?: string; role?: string }; finish_reason: string | null }>;
      usage?: { prompt_tokens: number; completion_tokens: number };
    }>;
    expect(bodies.every((b) => b.object === "chat.completion.chunk")).toBe(true);
    expect(bodies[0]?.choices[0]?.delta.role).toBe("assistant");
    expect(bodies.map((b) => b.choices[0]?.delta.content ?? "").join("")).toBe("Hello, streaming world!");
    expect(bodies.at(-2)?.choices[0]?.finish_reason).toBe("stop");
    expect(bodies.at(-1)?.choices).toEqual([]);
    expect(bodies.at(-1)?.usage?.completion_tokens).toBeGreaterThan(0);
    expect(model.requests()).toBe(1);
  });

  it("streams tool calls in pieces with a tool_calls finish", async () => {
    const model = await start({
      turns: [
        {
          type: "tools",
          calls: [
            { name: "write", arguments: { filePath: "a.txt", content: "x".repeat(300) } },
            { name: "bash", arguments: { command: "ls" } },
          ],
        },
      ],
    });
    const bodies = (await chunks(await post(model, { stream: true, tools, messages: [user] }))).slice(0, -1) as Array<{
      choices: Array<{
        delta: { tool_calls?: Array<{ index: number; id?: string; function: { name?: string; arguments: string } }> };
        finish_reason: string | null;
      }>;
    }>;
    const calls = new Map<number, { id?: string; name?: string; args: string }>();
    for (const b of bodies) {
      for (const tc of b.choices[0]?.delta.tool_calls ?? []) {
        const c = calls.get(tc.index) ?? { args: "" };
        if (tc.id) c.id = tc.id;
        if (tc.function.name) c.name = tc.function.name;
        c.args += tc.function.arguments;
        calls.set(tc.index, c);
      }
    }
    expect(calls.get(0)?.name).toBe("write");
    expect(JSON.parse(calls.get(0)?.args ?? "")).toEqual({ filePath: "a.txt", content: "x".repeat(300) });
    expect(calls.get(1)).toMatchObject({ name: "bash", args: '{"command":"ls"}' });
    expect(calls.get(0)?.id).not.toBe(calls.get(1)?.id);
    expect(bodies.filter((b) => b.choices[0]?.delta.tool_calls).length).toBeGreaterThan(3);
    expect(bodies.find((b) => b.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe("tool_calls");
  });

  it("answers without streaming, choosing the turn from the assistant messages so far", async () => {
    const demo = SCENARIOS.demo;
    if (!demo) throw new Error("no demo scenario");
    const model = await start(demo);
    const first = (await (await post(model, { tools, messages: [user] })).json()) as {
      object: string;
      choices: Array<{ message: { tool_calls: Array<{ function: { name: string } }> }; finish_reason: string }>;
    };
    expect(first.object).toBe("chat.completion");
    expect(first.choices[0]?.finish_reason).toBe("tool_calls");
    expect(first.choices[0]?.message.tool_calls[0]?.function.name).toBe("write");
    const history = [
      user,
      { role: "assistant", content: null },
      { role: "tool", content: "ok" },
      { role: "assistant", content: null },
      { role: "tool", content: "ok" },
    ];
    const third = (await (await post(model, { tools, messages: history })).json()) as typeof first;
    expect(third.choices[0]?.message.tool_calls[0]?.function.name).toBe("todowrite");
    const past = (await (
      await post(model, { tools, messages: [...history, ...history.slice(1), ...history.slice(1)] })
    ).json()) as { choices: Array<{ message: { content: string }; finish_reason: string }> };
    expect(past.choices[0]).toMatchObject({
      finish_reason: "stop",
      message: { content: parseScenario(SCENARIOS.demo).afterText },
    });
  });

  it("answers side requests (no tools) without consuming a turn", async () => {
    const model = await start({ turns: [{ type: "text", text: "main" }], sideText: "A title" });
    const side = (await (
      await post(model, { messages: [{ role: "system", content: "make a title" }, user] })
    ).json()) as { choices: Array<{ message: { content: string } }> };
    expect(side.choices[0]?.message.content).toBe("A title");
    const main = (await (await post(model, { tools, messages: [user] })).json()) as typeof side;
    expect(main.choices[0]?.message.content).toBe("main");
  });

  it("plays the scenario named by the model id", async () => {
    const model = await start(
      { turns: [{ type: "text", text: "default" }] },
      { other: { turns: [{ type: "text", text: "other" }] } },
    );
    const ids = (await (await fetch(`${model.url}/models`)).json()) as { data: Array<{ id: string }> };
    expect(ids.data.map((m) => m.id)).toEqual(["scripted", "other"]);
    const answer = async (m: string): Promise<string | undefined> =>
      (
        (await (await post(model, { model: m, tools, messages: [user] })).json()) as {
          choices: Array<{ message: { content: string } }>;
        }
      ).choices[0]?.message.content;
    expect(await answer("other")).toBe("other");
    expect(await answer("anything")).toBe("default");
  });

  it("fails a turn with HTTP 500 the given number of times", async () => {
    const model = await start({ turns: [{ type: "text", text: "ok", failure: { kind: "http_500", times: 2 } }] });
    expect((await post(model, { tools, messages: [user] })).status).toBe(500);
    expect((await post(model, { tools, messages: [user] })).status).toBe(500);
    expect((await post(model, { tools, messages: [user] })).status).toBe(200);
  });

  it("hangs a turn until the client gives up, and still closes promptly", async () => {
    const model = await start({ turns: [{ type: "text", text: "never", failure: { kind: "hang" } }] });
    await expect(post(model, { tools, messages: [user] }, AbortSignal.timeout(300))).rejects.toThrow();
    const pending = post(model, { tools, messages: [user] }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await model.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await pending).toBeInstanceOf(Error);
  });

  it("rejects malformed requests with 400 and unknown routes with 404", async () => {
    const model = await start({ turns: [{ type: "text", text: "x" }] });
    const bad = await post(model, { messages: "nope" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/not a chat completion/);
    const notJson = await fetch(`${model.url}/chat/completions`, { method: "POST", body: "{" });
    expect(notJson.status).toBe(400);
    expect((await fetch(`${model.url}/nothing`)).status).toBe(404);
    expect(model.requests()).toBe(0);
  });

  it("validates scenarios", () => {
    expect(() => parseScenario({ turns: [] })).toThrow();
    expect(() => parseScenario({ turns: [{ type: "tools", calls: [] }] })).toThrow();
    expect(() => parseScenario({ turns: [{ type: "text", text: "x", failure: { kind: "explode" } }] })).toThrow();
    for (const s of Object.values(SCENARIOS)) expect(() => parseScenario(s)).not.toThrow();
    expect(turnIndex([{ role: "system" }, { role: "user" }, { role: "assistant" }, { role: "tool" }])).toBe(1);
  });
});
