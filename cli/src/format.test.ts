import { describe, expect, it } from "vitest";
import { Session, SessionConfig } from "@fleet/shared";
import { formatSession } from "./format.js";

const base = Session.parse({
  id: "s-1",
  projectId: "p",
  prompt: "go",
  config: SessionConfig.parse({}),
  status: "running",
  phase: "running",
  attempt: 1,
  metrics: {},
  createdAt: 1,
  updatedAt: 2,
  deadlineAt: 3,
});

describe("./fleet show: the header line", () => {
  it("shows the phase of an active session", () => {
    expect(formatSession(base)[0]).toContain("running (running)");
    expect(formatSession({ ...base, status: "pending", phase: "server_starting" })[0]).toContain(
      "pending (server_starting)",
    );
  });

  it("never says an ended session runs; a session that ended during setup names where", () => {
    const completed = formatSession({ ...base, status: "completed", completedAt: 4 })[0];
    expect(completed).toContain("s-1  completed  project p");
    expect(completed).not.toMatch(/running/);
    expect(formatSession({ ...base, status: "cancelled", completedAt: 4 })[0]).not.toMatch(/running/);
    expect(formatSession({ ...base, status: "failed", phase: "server_starting", completedAt: 4 })[0]).toContain(
      "failed (ended during server_starting)",
    );
  });
});
