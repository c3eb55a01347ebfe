/**
 * Submits a session over HTTP, prints its log as it comes, and exits with its outcome.
 *   FLEET_API_URL=http://127.0.0.1:8080 FLEET_API_KEY=fk_… node dist/examples/submit-and-follow.js "prompt"
 */
import { FleetHttpClient } from "@session-fleet/client";

const client = new FleetHttpClient({
  baseUrl: process.env.FLEET_API_URL ?? "http://127.0.0.1:8080",
  apiKey: process.env.FLEET_API_KEY,
});

const { sessionId } = await client.submit(
  { projectId: "default", prompt: process.argv[2] ?? "Write hello.txt" },
  // A retry with the same key answers the same session.
  { idempotencyKey: `example-${new Date().toISOString().slice(0, 10)}` },
);
for await (const event of client.follow(sessionId)) {
  if (event.type === "log") console.log(`${event.line.seq}\t${event.line.line}`);
  else console.log(`ended: ${event.end.status}`);
}
const session = await client.get(sessionId);
process.exit(session.status === "completed" ? 0 : 1);
