import { createServer, type Server } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { pickPort, portFree } from "./ports.js";

const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

function listen(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    servers.push(srv);
    srv.listen(0, "127.0.0.1", () => resolve((srv.address() as { port: number }).port));
  });
}

describe("pickPort", () => {
  it("skips ports that are in use or promised to other sandboxes", async () => {
    const busy = await listen();
    expect(await portFree(busy)).toBe(false);
    // A range of three: the busy port, a promised one, and the only answer.
    const lo = busy;
    if (!(await portFree(lo + 2))) return; // the host took it meanwhile: nothing to learn
    expect(await pickPort([lo, lo + 2], new Set([lo + 1]), () => 0)).toBe(lo + 2);
  });

  it("fails retryably when the range is exhausted", async () => {
    const busy = await listen();
    await expect(pickPort([busy, busy], new Set())).rejects.toMatchObject({ code: "sandbox", retryable: true });
  });
});
