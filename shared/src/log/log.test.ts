import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, safeUrl } from "./index.js";

describe("logging", () => {
  it("redacts secrets wherever they sit", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write: (chunk, _enc, cb) => {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger({ name: "t", destination: sink });
    log
      .child({ sessionId: "s" })
      .info(
        { password: "hunter2", agent: { token: "tok-123", apiKey: "k-9" }, headers: { authorization: "Basic abc" } },
        "x",
      );
    const out = lines.join("");
    for (const secret of ["hunter2", "tok-123", "k-9", "Basic abc"]) expect(out).not.toContain(secret);
    expect(out).toContain('"sessionId":"s"');
  });

  it("strips credentials from URLs", () => {
    expect(safeUrl("mongodb://user:pw@h:1/db")).toBe("mongodb://***:***@h:1/db");
    expect(safeUrl("nats://h:4222")).toBe("nats://h:4222");
  });
});
